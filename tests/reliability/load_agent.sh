#!/bin/sh
# Agent of the two-workers test: notes its start and end (task key, pid, parent pid: the
# worker, time, cwd) in $1, and makes a one-file change in its worktree, the current directory.
# It takes a moment, so that tasks of a repo do run at the same time when they may.
key=$(basename "$PWD")
echo "start $key $$ $PPID $(date +%s.%N) $PWD" >> "$1"
echo "work of $key" > work.txt
sleep 0.3
echo "end $key $$ $PPID $(date +%s.%N) $PWD" >> "$1"
