"""Sources in twelve languages and helpers shared by the repo map tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.gitrepos import make_repo
from worker.repo_map import FileSymbols, RepoMap, RepoMapper

SOURCES: dict[str, str] = {
    "shop/cart.py": '''\
import os


class Cart(Base):
    """A cart."""

    def add(self, item):
        def inner():
            pass

    @property
    def total(self):
        return 0


@decorator
def checkout(cart):
    pass


type Money = int
''',
    "web/app.js": """\
import x from 'y';
export class Cart extends Base { add(item) {} get total() { return 0 } }
function helper() { function nested() {} }
export const fetcher = async () => {};
let count = 3;
""",
    "web/shapes.ts": """\
export interface Shape { area(): number }
export type Id = string | number;
export enum Color { Red, Green }
export class Circle implements Shape {
  constructor(private r: number) {}
  area(): number { return 3.14 * this.r * this.r }
}
export function makeCircle(r: number): Circle { return new Circle(r) }
""",
    "web/Button.tsx": """\
type Props = { label: string };
export function Button({ label }: Props) { return <button>{label}</button>; }
export class Panel extends React.Component<Props> { render() { return <div/>; } }
""",
    "store/store.go": """\
package store

type Store struct { items []string }
type Reader interface { Read() error }
type ID = int

func NewStore() *Store { return &Store{} }
func (s *Store) Add(x string) { s.items = append(s.items, x) }
""",
    "geo/lib.rs": """\
pub struct Point { x: i32 }
pub enum Shape { Circle, Square }
pub trait Area { fn area(&self) -> f64; }
impl Area for Point { fn area(&self) -> f64 { 0.0 } }
pub type Alias = Vec<i32>;
pub fn main() {}
""",
    "src/Cart.java": """\
package com.shop;
public class Cart<T> {
  public Cart() {}
  public void add(T item) {}
  static class Inner { void go() {} }
}
interface Priced { double price(); }
enum Size { SMALL, LARGE; int code() { return 0; } }
record Pair(int a, int b) {}
""",
    "src/Money.cs": """\
namespace Shop.Core {
  public class Wallet { public void Deposit(int x) {} }
  public interface IPriced { decimal Price(); }
  public struct Money { }
  public enum Currency { Usd, Eur }
}
""",
    "lib/shop.rb": """\
module Shop
  class Basket < Base
    def add(item); end
    def self.build; end
  end
end
def top_level; end
""",
    "app/Models.php": """\
<?php
namespace App\\Models;
interface Priced { public function price(): float; }
trait Stamps { public function stamp() {} }
enum Suit: string { case Hearts = 'H'; }
class Order implements Priced { public function price(): float { return 0; } }
function helper() {}
""",
    "c/point.c": """\
#include <stdio.h>
struct point { int x; };
typedef struct { int a; } pair_t;
enum color { RED, GREEN };
static int add(int a, int b) { return a + b; }
int proto(int x);
""",
    "cpp/shape.cpp": """\
namespace geo {
class Shape {
 public:
  virtual double area() const = 0;
  void move(int dx) { x += dx; }
 private:
  int x;
};
struct Vec { double norm() const; };
}
double geo::Vec::norm() const { return 0; }
template <typename T> T max_of(T a, T b) { return a; }
""",
    "scripts/deploy.sh": """\
#!/bin/bash
build() { echo hi; }
function deploy { echo x; }
""",
}

# (path, language, symbols that must be there as (name, kind, parent, line))
EXPECTED: list[tuple[str, str, set[tuple[str, str, str | None, int]]]] = [
    ("shop/cart.py", "python", {
        ("Cart", "class", None, 4), ("add", "method", "Cart", 7),
        ("total", "method", "Cart", 12), ("checkout", "function", None, 17),
        ("Money", "type", None, 21),
    }),
    ("web/app.js", "javascript", {
        ("Cart", "class", None, 2), ("add", "method", "Cart", 2),
        ("helper", "function", None, 3), ("fetcher", "function", None, 4),
    }),
    ("web/shapes.ts", "typescript", {
        ("Shape", "interface", None, 1), ("area", "method", "Shape", 1), ("Id", "type", None, 2),
        ("Color", "enum", None, 3), ("Circle", "class", None, 4),
        ("area", "method", "Circle", 6), ("makeCircle", "function", None, 8),
    }),
    ("web/Button.tsx", "tsx", {
        ("Props", "type", None, 1), ("Button", "function", None, 2),
        ("Panel", "class", None, 3), ("render", "method", "Panel", 3),
    }),
    ("store/store.go", "go", {
        ("Store", "struct", None, 3), ("Reader", "interface", None, 4), ("ID", "type", None, 5),
        ("NewStore", "function", None, 7), ("Add", "method", "Store", 8),
    }),
    ("geo/lib.rs", "rust", {
        ("Point", "struct", None, 1), ("Shape", "enum", None, 2), ("Area", "trait", None, 3),
        ("area", "method", "Area", 3), ("area", "method", "Point", 4),
        ("Alias", "type", None, 5), ("main", "function", None, 6),
    }),
    ("src/Cart.java", "java", {
        ("Cart", "class", None, 2), ("add", "method", "Cart", 4), ("Inner", "class", "Cart", 5),
        ("go", "method", "Inner", 5), ("Priced", "interface", None, 7),
        ("Size", "enum", None, 8), ("code", "method", "Size", 8), ("Pair", "record", None, 9),
    }),
    ("src/Money.cs", "csharp", {
        ("Shop.Core", "namespace", None, 1), ("Wallet", "class", "Shop.Core", 2),
        ("Deposit", "method", "Wallet", 2), ("IPriced", "interface", "Shop.Core", 3),
        ("Money", "struct", "Shop.Core", 4), ("Currency", "enum", "Shop.Core", 5),
    }),
    ("lib/shop.rb", "ruby", {
        ("Shop", "module", None, 1), ("Basket", "class", "Shop", 2),
        ("add", "method", "Basket", 3), ("build", "method", "Basket", 4),
        ("top_level", "function", None, 7),
    }),
    ("app/Models.php", "php", {
        ("Priced", "interface", None, 3), ("Stamps", "trait", None, 4),
        ("stamp", "method", "Stamps", 4), ("Suit", "enum", None, 5),
        ("Order", "class", None, 6), ("price", "method", "Order", 6),
        ("helper", "function", None, 7),
    }),
    ("c/point.c", "c", {
        ("point", "struct", None, 2), ("pair_t", "struct", None, 3),
        ("color", "enum", None, 4), ("add", "function", None, 5), ("proto", "function", None, 6),
    }),
    ("cpp/shape.cpp", "cpp", {
        ("geo", "namespace", None, 1), ("Shape", "class", "geo", 2),
        ("area", "method", "Shape", 4), ("move", "method", "Shape", 5),
        ("Vec", "struct", "geo", 9), ("norm", "method", "Vec", 11),
        ("max_of", "function", None, 12),
    }),
    ("scripts/deploy.sh", "bash", {
        ("build", "function", None, 2), ("deploy", "function", None, 3),
    }),
]  # fmt: skip

REGEX_SOURCES = {
    "android/Cart.kt": """\
package shop

data class Item(val name: String)

class Cart {
    fun add(item: Item) {}
    private suspend fun sync() {}
}

fun topLevel() = 1
""",
    "ios/Cart.swift": """\
struct Item { let name: String }
protocol Priced {
    func price() -> Double
}
final class Cart {
    func add(_ item: Item) {}
}
""",
    "game/util.lua": """\
local M = {}
function M.clamp(x, lo, hi) end
local function helper() end
""",
    "lib/cart.ex": """\
defmodule Shop.Cart do
  def add(cart, item), do: [item | cart]
  defp secret, do: :ok
end
""",
}


def map_of(root: Path, files: dict[str, str], cache: Path | None = None) -> RepoMap:
    repo = make_repo(root, files)
    repo_map, _ = asyncio.run(RepoMapper(cache or root.parent / "cache").build(repo))
    return repo_map


def file_of(repo_map: RepoMap, path: str) -> FileSymbols:
    return next(f for f in repo_map.files if f.path == path)


def tuples(file: FileSymbols) -> set[tuple[str, str, str | None, int]]:
    return {(s.name, s.kind, s.parent, s.line) for s in file.symbols}
