"""A seeded corpus for benchmarking secret scanners: files of code and config with labels.

`build(seed, filler_bytes)` returns files of Python, JavaScript, YAML, .env, JSON and shell
(plus three lockfiles) made of ordinary generated code, into which it inserts

- positives: real-format FAKE secrets of every family worker/secret_rules.py knows, random
  bodies from the seeded generator, in the syntax of the file they land in (some under names
  that say "example" or "test"); each labelled at its line (a private key at its BEGIN line;
  the key's other lines are `ignored`, neither positive nor negative);
- negatives: what a naive scanner flags but is no secret: git SHAs, UUIDs, lockfile hashes,
  digests, a base64 image, public keys and certificates, placeholders of every family,
  truncated keys, environment references, password look-alikes, publishable keys.

Every other line is filler: ordinary code that also speaks of passwords and tokens.
Values are written as templates: `{b62:36}` is 36 random characters of that alphabet.
The same seed gives the same corpus, byte for byte.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

ALPHABETS = {
    "b62": string.ascii_letters + string.digits, "url": string.ascii_letters + string.digits + "-_",
    "b64": string.ascii_letters + string.digits + "+/", "hex": "0123456789abcdef",
    "b32": string.ascii_uppercase + "234567", "u36": string.ascii_uppercase + string.digits,
    "dig": string.digits, "low": string.ascii_lowercase, "x": "x", "X": "X", "zero": "0",
    "star": "*",
}  # fmt: skip
_FIELD = re.compile(r"(?<!\{)\{([A-Za-z0-9]+)(?::(\d+))?\}(?!\})")
FORMATS = {"py": ".py", "js": ".js", "yaml": ".yaml", "env": ".env", "json": ".json", "sh": ".sh"}
WEIGHTS = (34, 26, 10, 6, 12, 12)  # of FORMATS, in order
WORDS = ("user", "order", "invoice", "cart", "item", "price", "total", "session", "cache",
    "queue", "job", "task", "report", "account", "profile", "email", "address", "payment",
    "refund", "ticket", "message", "event", "record", "batch", "page", "limit", "offset",
    "status", "result", "config", "client", "server", "request", "response", "handler", "value",
    "name", "path", "file", "stream", "buffer", "retry")  # fmt: skip

# family, how many, names to pick from, value template
POSITIVES = (
    ("anthropic", 8, "anthropic_api_key claude_key example_anthropic_key",
     "sk-ant-api03-{url:93}AA"),
    ("anthropic", 3, "anthropic_admin_key", "sk-ant-admin01-{url:93}AA"),
    ("anthropic", 3, "claude_code_oauth_token", "sk-ant-oat01-{url:93}AA"),
    ("openai", 4, "openai_api_key openai_key", "sk-{b62:20}T3BlbkFJ{b62:20}"),
    ("openai", 6, "openai_api_key test_openai_key", "sk-proj-{url:74}T3BlbkFJ{url:74}"),
    ("openai", 3, "openai_service_key", "sk-svcacct-{url:156}"),
    ("openai", 2, "openai_admin_key", "sk-admin-{url:156}"),
    ("aws", 6, "aws_access_key_id access_key", "AKIA{b32:16}"),
    ("aws", 2, "aws_access_key_id", "ASIA{b32:16}"),
    ("aws", 6, "aws_secret_access_key aws_secret_key secret_access_key", "{b64:40}"),
    ("github", 6, "github_token gh_token example_github_token", "ghp_{b62:36}"),
    ("github", 4, "github_pat", "github_pat_11{u36:20}_{b62:59}"),
    ("github", 2, "github_oauth_token", "gho_{b62:36}"),
    ("github", 2, "github_user_token", "ghu_{b62:36}"),
    ("github", 2, "github_app_token", "ghs_{b62:36}"),
    ("github", 2, "github_refresh_token", "ghr_{b62:36}"),
    ("gitlab", 5, "gitlab_token ci_api_token", "glpat-{url:20}"),
    ("gitlab", 2, "gitlab_deploy_token", "gldt-{url:20}"),
    ("gitlab", 2, "runner_token", "glrt-{url:20}"),
    ("gitlab", 2, "trigger_token", "glptt-{hex:40}"),
    ("gitea", 4, "gitea_token forgejo_token token", "{hex:40}"),
    ("slack", 4, "slack_bot_token", "xoxb-{dig:12}-{dig:13}-{b62:24}"),
    ("slack", 3, "slack_user_token", "xoxp-{dig:12}-{dig:12}-{dig:13}-{hex:32}"),
    ("slack", 2, "slack_app_token", "xapp-1-A{u36:10}-{dig:13}-{hex:64}"),
    ("slack", 4, "slack_webhook_url", "https://hooks.slack.com/services/T{u36:8}/B{u36:10}/{b62:24}"),
    ("google", 6, "google_api_key maps_key firebase_api_key", "AIza{url:35}"),
    ("stripe", 4, "stripe_secret_key stripe_key", "sk_live_{b62:24}"),
    ("stripe", 2, "stripe_restricted_key", "rk_live_{b62:99}"),
    ("stripe", 3, "stripe_test_key example_stripe_key", "sk_test_{b62:99}"),
    ("stripe", 2, "stripe_webhook_secret", "whsec_{b62:32}"),
    ("telegram", 5, "telegram_bot_token bot_token", "{telegram}:AA{url:33}"),
    ("npm", 4, "npm_token npm_auth_token", "npm_{b62:36}"),
    ("pypi", 3, "pypi_token twine_password", "pypi-AgEIcHlwaS5vcmc{url:150}"),
    ("sendgrid", 4, "sendgrid_api_key", "SG.{url:22}.{url:43}"),
    ("twilio", 3, "twilio_api_key_sid", "SK{hex:32}"),
    ("twilio", 3, "twilio_auth_token", "{hex:32}"),
    ("azure", 4, "azure_storage_connection_string",
     "DefaultEndpointsProtocol=https;AccountName=st{low:8};AccountKey={b64:86}==;"
     "EndpointSuffix=core.windows.net"),
    ("jwt", 5, "session_jwt id_token auth_jwt", "{jwt}"),
    ("password", 10, "db_password password smtp_pass redis_password admin_pwd", "{password}"),
    ("password", 5, "database_url broker_url",
     "postgresql://app_{low:4}:{b62:16}@db-{dig:1}.internal:5432/app"),
)  # fmt: skip
# Positives written as whole lines, the same in every format.
POSITIVE_LINES = (
    ("gitea", 'headers = {{"Authorization": "token {hex:40}"}}'),
    ("gitea", "curl -H 'Authorization: token {hex:40}' https://git.internal/api/v1/user"),
    ("gitea", '  "token": "{hex:40}",'),
    ("twilio", 'client = Client("AC{hex:32}", "{hex:32}")'),
    ("password", 'conn = "Server=sql1;Database=shop;User Id=shop;Password={password};"'),
    ("password", "    <password>{password}</password>"),
    ("password", 'db = connect(host="db", user="app", password="{password}")'),
    ("password", "$password = '{password}';"),
    ("npm", "//registry.npmjs.org/:_authToken=npm_{b62:36}"),
)
PRIVATE_KEYS = (
    ("RSA PRIVATE KEY", "MIIEowIBAAKCAQEA"), ("EC PRIVATE KEY", "MHcCAQEEI"),
    ("OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAA"), ("PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0"),
    ("ENCRYPTED PRIVATE KEY", "MIIFHDBOBgkqhkiG9w0BBQ0w"), ("PGP PRIVATE KEY BLOCK", "lQdGBGR"),
    ("RSA PRIVATE KEY", "MIIEpAIBAAKCAQEA"), ("OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAA"),
)  # fmt: skip
PUBLIC_BLOCKS = (("PUBLIC KEY", "MIIBIjANBgkqhkiG9w0BAQEFAAOC"),
                 ("CERTIFICATE", "MIIDdzCCAl+gAwIB"))  # fmt: skip
# kind, name (None: the template is the whole line, in every format), value template
NEGATIVES = (
    ("git-sha", "commit", "{hex:40}"), ("git-sha", "base_revision", "{hex:40}"),
    ("git-sha", "sha", "{hex:40}"), ("git-sha", None, "git checkout {hex:40}"),
    ("git-sha", None, "      - uses: actions/checkout@{hex:40}"),
    ("git-sha", None, '    "resolved": "git+ssh://git@github.com/acme/ui.git#{hex:40}",'),
    ("git-sha", None, "# fixed in {hex:40} (revert of {hex:12})"),
    ("uuid", "request_id", "{uuid}"), ("uuid", "tenant_id", "{uuid}"),
    ("uuid", "client_id", "{uuid}"), ("uuid", "correlation_id", "{uuid}"),
    ("hash", "etag", "{hex:32}"), ("hash", "md5", "{hex:32}"), ("hash", "object_id", "{hex:24}"),
    ("hash", "content_sha256", "{hex:64}"), ("hash", "trace_id", "{hex:32}"),
    ("hash", "build_hash", "{b62:20}"), ("digest", None, "image: python@sha256:{hex:64}"),
    ("digest", None, '<script src="/app.js" integrity="sha384-{b64:64}"></script>'),
    ("digest", None, 'checksum = "sha512-{b64:86}=="'),
    ("base64-image", "logo", "data:image/png;base64,{png}"),
    ("documented-example", "aws_access_key_id", "AKIAIOSFODNN7EXAMPLE"),
    ("documented-example", "aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("placeholder", "github_token", "ghp_{x:36}"), ("placeholder", "github_token", "<your-token>"),
    ("placeholder", "openai_api_key", "sk-your-openai-key-here"),
    ("placeholder", "openai_api_key", "sk-..."), ("placeholder", "api_key", "${{API_KEY}}"),
    ("placeholder", "anthropic_api_key", "your_api_key_here"),
    ("placeholder", "anthropic_api_key", "sk-ant-api03-..."),
    ("placeholder", "stripe_secret_key", "sk_live_{X:24}"),
    ("placeholder", "slack_bot_token", "xoxb-your-bot-token"),
    ("placeholder", "slack_webhook_url", "https://hooks.slack.com/services/T{zero:8}/B{zero:8}/{X:24}"),
    ("placeholder", "telegram_bot_token", "123456789:your-bot-token"),
    ("placeholder", "aws_access_key_id", "AKIA{X:16}"), ("placeholder", "db_password", "changeme"),
    ("placeholder", "password", "{{{{ db_password }}}}"),
    ("placeholder", "password", "%(password)s"), ("placeholder", "gitea_token", "{zero:40}"),
    ("placeholder", "sendgrid_api_key", "SG.{x:22}.{x:43}"),
    ("placeholder", "npm_token", "npm_{star:36}"),
    ("placeholder", "google_api_key", "AIza{zero:35}"),
    ("placeholder", "db_password", "<password>"), ("placeholder", "smtp_password", "{star:8}"),
    ("placeholder", "password", "REDACTED"),
    ("truncated", "github_token", "ghp_{b62:20}"), ("truncated", "google_api_key", "AIza{url:20}"),
    ("truncated", "gitlab_token", "glpat-{url:12}"), ("truncated", "npm_token", "npm_{b62:16}"),
    ("truncated", "anthropic_api_key", "sk-ant-api03-{url:12}"),
    ("publishable", "stripe_publishable_key", "pk_live_{b62:24}"),
    ("publishable", "stripe_publishable_key", "pk_test_{b62:24}"),
    ("publishable", "twilio_account_sid", "AC{hex:32}"),
    ("env-reference", None, 'api_key = os.environ["OPENAI_API_KEY"]'),
    ("env-reference", None, "const stripe = new Stripe(process.env.STRIPE_SECRET_KEY);"),
    ("env-reference", None, 'password = os.getenv("DB_PASSWORD")'),
    ("env-reference", None, "token: ${{{{ secrets.GITHUB_TOKEN }}}}"),
    ("env-reference", None, 'DATABASE_URL="postgres://app:${{DB_PASSWORD}}@db:5432/app"'),
    ("password-like", None, 'password_hash = "$2b$12${b64:53}"'),
    ("password-like", None, '<input type="password" name="password" autocomplete="off">'),
    ("password-like", None, "PASSWORD_MIN_LENGTH = 12"),
    ("password-like", None, '  "password": "Password",'),
    ("password-like", None, "def login(username, password):"),
    ("password-like", None, "POSTGRES_PASSWORD: postgres"),
    ("password-like", None, "TEST_DATABASE_URL=postgres://postgres:postgres@localhost:5432/test"),
    ("password-like", None, 'password = getpass.getpass("Password: ")'),
    ("password-like", None, "if password != confirm_password:"),
    ("password-like", None, 'user.set_password(form.cleaned_data["password"])'),
    ("password-like", None, 'password: str = Field(min_length=8, description="the new password")'),
    ("password-like", None, "redis_url: redis://:password@localhost:6379/0"),
    ("token-like", None, 'bot = Bot("42:TEST")'), ("token-like", None, 'started_at = "12:34:56"'),
    ("token-like", None, "cache_dir=$npm_config_cache"),
    ("token-like", None, "version = process.env.npm_package_version"),
    ("token-like", None, 'sku = "SK{hex:32}"'),
    ("token-like", None, 'CONFIG_B64="eyJkZWJ1ZyI6IHRydWV9"'),
    ("token-like", None, 'token = request.headers["Authorization"].removeprefix("Bearer ")'),
    ("token-like", None, "next_page_token: {b62:24}"),
    ("token-like", None, 'SENTRY_DSN="https://{hex:32}@o{dig:6}.ingest.sentry.io/{dig:7}"'),
    ("token-like", None, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{b64:43} deploy@ci"),
    ("env-reference", None, "//registry.npmjs.org/:_authToken=${{NPM_TOKEN}}"),
    ("pem-header-in-code", None, 'if text.startswith("-----BEGIN RSA PRIVATE KEY-----"):'),
    ("pem-header-in-code", None, 'PEM_MARKER = "-----BEGIN PRIVATE KEY-----"'),
)  # fmt: skip
FILLER: dict[str, tuple[str, ...]] = {
    "py": ('{a} = {b}.get("{w}")', "if not {a}:", '    raise ValueError("{w} is required")',
           "for {a} in {b}:", "    total += {a}.{w}_count", "return {a}[{n}:]", "{a}: int = {n}",
           'log.info("{w} done", extra={{"{w}_id": {a}.id}})', "user.set_password(new_password)",
           'token = request.headers.get("Authorization", "")', "api_key = settings.API_KEY",
           "if not check_password(password, user.password_hash):", 'import {w}', "",
           'url = f"https://api.{w}.internal/v1/{{{a}}}"', "digest = hashlib.sha256(b).hexdigest()",
           'headers = {{"Authorization": f"Bearer {{token}}"}}', 'cache_key = f"{w}:{{{a}}}:{n}"',
           "    {a} = await self._{w}_repo.by_id({b}_id)", 'secret_name = f"{w}-{{env}}"',
           "@dataclass(frozen=True)", "class {A}{W}:", "    {a}: str", "    {b}: int = {n}",
           "def {a}_{w}(self, {b}: str, *, limit: int = {n}) -> list[str]:",
           '    """Return the {w} of each {a}, newest first."""', "from {w} import {A}",
           "    return [x.{w} for x in self.{b} if x.{a} > {n}]"),
    "js": ("const {a} = await fetch(`/api/{w}/${{{b}}}`);", "export function {a}{W}({b}) {{",
           "if (!{a}) {{ throw new Error('{w}'); }}", "  return {b}.map((x) => x.{w});", "}}",
           "const headers = {{ Authorization: `Bearer ${{token}}` }};", "let {a} = {n};",
           "  const password = form.elements.password.value;", "  if (!token) return null;",
           "import {{ {a} }} from './{w}.js';", "  {a}.{w} = {b}?.{w} ?? {n};", "",
           "  setState({{ {w}: {a}, loading: false }});", "// TODO: cache the {w} per {a}"),
    "yaml": ("{a}_{w}: {n}", "{a}_enabled: true", "{w}_url: https://{w}.internal/{a}",
             "# {w} settings for {a}", "{a}_timeout_seconds: {n}", "{a}_name: {w}-{b}",
             "{w}_secret_name: {a}-{w}", "{a}_password_file: /run/secrets/{w}", "{a}:",
             "  - {w}-{b}", "  {a}_{w}: {n}", "{a}_replicas: {n}", "  image: {w}:1.{n}"),
    "env": ("{A}_{W}={n}", "{A}_HOST={w}.internal", "{A}_ENABLED=true", "# {w} for {a}",
            "{A}_URL=https://{w}.internal/{a}", "LOG_LEVEL=info"),
    "json": ('  "{a}{W}": {n},', '  "{a}": "{w}",', '  "{a}Enabled": false,',
             '  "{a}Url": "https://{w}.internal/{b}",', '  "{w}Id": "{b}-{n}",'),
    "sh": ('{a}="$1"', 'if [ -z "${a}" ]; then echo "usage: $0 {w}" >&2; exit 1; fi',
           'curl -fsS "https://{w}.internal/{a}" -H "Authorization: Bearer $TOKEN"',
           'for {a} in "${{{b}[@]}}"; do {w} "${a}"; done', "read -rs -p 'Password: ' password",
           "export {A}_{W}={n}", "# {w} the {a}", 'cd "$(dirname "$0")" && make {w}'),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Label:
    path: str
    line: int  # 1-based
    positive: bool
    family: str  # positives: the secret's family; negatives: the kind of look-alike


@dataclass(frozen=True, slots=True)
class CorpusFile:
    path: str
    text: str


@dataclass
class Corpus:
    files: list[CorpusFile] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    ignored: set[tuple[str, int]] = field(default_factory=set)  # lines inside a labelled key


@dataclass(frozen=True, slots=True)
class Item:
    """What to insert: lines per format (all formats unless a block needs its own syntax)."""

    positive: bool
    family: str
    lines: dict[str, list[str]]
    at: int = 0  # the labelled line within the lines


def render(fmt: str, name: str, value: str) -> str:
    """One assignment of `value` to `name` in the syntax of `fmt`."""
    head, *rest = name.lower().split("_")
    camel = head + "".join(part.title() for part in rest)
    upper = name.upper()
    return {"py": f'{upper} = "{value}"', "js": f'const {camel} = "{value}";',
            "yaml": f"{name.lower()}: {value}", "env": f"{upper}={value}",
            "json": f'  "{camel}": "{value}",', "sh": f'export {upper}="{value}"'}[fmt]  # fmt: skip


class Maker:
    """Fills value templates from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choices(ALPHABETS[alphabet], k=n))

    def fill(self, template: str) -> str:
        return _FIELD.sub(self._field, template).replace("{{", "{").replace("}}", "}")

    def _field(self, m: re.Match[str]) -> str:
        if m.group(2) is not None:
            return self.chars(m.group(1), int(m.group(2)))
        special: Callable[[], str] = getattr(self, "_" + m.group(1))
        return special()

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def _telegram(self) -> str:
        return str(self.rng.randint(10**8, 7 * 10**9))

    def _png(self) -> str:
        return base64.b64encode(b"\x89PNG\r\n\x1a\n" + self.rng.randbytes(600)).decode()

    def _password(self) -> str:
        word = self.rng.choice(("Tiger", "Falcon", "River", "Maple", "Copper", "Orbit", "Secret"))
        mine = self.rng.choice(("My", "Our", "Prod", ""))
        return (f"{mine}{word}{self.rng.randint(10, 99999)}{self.rng.choice('!#%^&*+')}"
                f"{self.chars('low', self.rng.randint(2, 5))}")  # fmt: skip

    def _jwt(self) -> str:
        def part(data: object) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

        claims = {"sub": self._uuid(), "iat": self.rng.randint(1_600_000_000, 1_800_000_000)}
        signature = base64.urlsafe_b64encode(self.rng.randbytes(32)).decode().rstrip("=")
        return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{signature}"

    def block(self, label: str, first: str, *, positive: bool, family: str) -> Item:
        """A multi-line PEM block in each format's syntax, labelled at its BEGIN line."""
        body = [first + self.chars("b64", 64 - len(first))]
        body += [self.chars("b64", 64) for _ in range(self.rng.randint(8, 20))]
        pem = [f"-----BEGIN {label}-----", *body, self.chars("b64", 40) + "==",
               f"-----END {label}-----"]  # fmt: skip
        n, inline = self.rng.randint(1, 99), "\\n".join(pem) + "\\n"
        return Item(positive, family, {
            "py": [f'KEY_{n} = """\\', *pem, '"""'], "js": [f"const pem{n} = `", *pem, "`;"],
            "yaml": [f"key_{n}: |", *("  " + line for line in pem)],
            "sh": [f"cat > key{n}.pem <<'EOF'", *pem, "EOF"],
            "json": ['  "type": "service_account",', f'  "private_key": "{inline}",'],
        }, at=1)  # fmt: skip


def items(maker: Maker) -> list[Item]:
    """Every positive and negative of the corpus, in a shuffled order."""
    rng, out = maker.rng, []
    for family, count, names, template in POSITIVES:
        for _ in range(count):
            name, value = rng.choice(names.split()), maker.fill(template)
            out.append(Item(True, family, {fmt: [render(fmt, name, value)] for fmt in FORMATS}))
    for family, template in POSITIVE_LINES:
        out.append(Item(True, family, {fmt: [maker.fill(template)] for fmt in FORMATS}))
    for kind, target, template in NEGATIVES:
        value = maker.fill(template)
        out.append(Item(False, kind, {fmt: [value if target is None else render(fmt, target, value)]
                                      for fmt in FORMATS}))  # fmt: skip
    out += [maker.block(label, first, positive=True, family="private-key")
            for label, first in PRIVATE_KEYS]  # fmt: skip
    out += [maker.block(label, first, positive=False, family="public-pem")
            for label, first in PUBLIC_BLOCKS]  # fmt: skip
    rng.shuffle(out)
    return out


def lockfiles(maker: Maker) -> list[tuple[str, list[str]]]:
    """package-lock.json, poetry.lock and Cargo.lock: every hash line is a negative."""
    npm = ["{", '  "lockfileVersion": 3,', '  "packages": {']
    poetry, cargo = ["# This file is automatically @generated by Poetry"], ["version = 3"]
    for _ in range(15):
        name = f"{maker.rng.choice(WORDS)}-{maker.rng.choice(WORDS)}"
        npm += [f'    "node_modules/{name}": {{', '      "version": "1.2.0",',
                maker.fill('      "integrity": "sha512-{b64:86}=="'), "    },"]  # fmt: skip
        poetry += ["", "[[package]]", f'name = "{name}"', "files = [",
                   maker.fill(f'    {{{{file = "{name}.whl", hash = "sha256:{{hex:64}}"}}}},'),
                   "]"]  # fmt: skip
        cargo += ["", "[[package]]", f'name = "{name}"', maker.fill('checksum = "{hex:64}"')]
    return [("web/package-lock.json", [*npm, "  }", "}"]), ("api/poetry.lock", poetry),
            ("core/Cargo.lock", cargo)]  # fmt: skip


def _filler_line(rng: random.Random, fmt: str) -> str:
    a, b, w = rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS)
    return rng.choice(FILLER[fmt]).format(a=a, b=b, w=w, n=rng.randint(0, 9999), A=a.upper(),
                                          W=w.upper() if fmt == "env" else w.title())  # fmt: skip


def build(seed: int = 20261201, filler_bytes: int = 3_000_000, files: int = 120) -> Corpus:
    """The corpus: `files` generated files of about `filler_bytes` in all, plus lockfiles."""
    rng = random.Random(seed)  # noqa: S311  # reproducible data, not secrets
    maker = Maker(rng)
    fmts = rng.choices(list(FORMATS), weights=WEIGHTS, k=files)
    planned: list[list[Item]] = [[] for _ in range(files)]
    for item in items(maker):
        planned[rng.choice([i for i in range(files) if fmts[i] in item.lines])].append(item)
    corpus = Corpus()
    for index, (fmt, inserts) in enumerate(zip(fmts, planned, strict=True)):
        word = rng.choice(WORDS)
        path = f"services/{word}_{index:03d}/.env" if fmt == "env" else (
            f"src/{word}_{index:03d}{FORMATS[fmt]}")  # fmt: skip
        lines, size = ["{"] if fmt == "json" else [], 0
        target = int(filler_bytes / files * rng.uniform(0.5, 1.5))
        for item, slot in zip(inserts, sorted(rng.randrange(target) for _ in inserts), strict=True):
            while size < slot:
                lines.append(_filler_line(rng, fmt))
                size += len(lines[-1]) + 1
            first = len(lines) + 1
            corpus.labels.append(Label(path, first + item.at, item.positive, item.family))
            if item.positive:
                block = range(first, first + len(item.lines[fmt]))
                corpus.ignored.update((path, n) for n in block if n != first + item.at)
            lines += item.lines[fmt]
            size += sum(len(line) + 1 for line in item.lines[fmt])
        while size < target:
            lines.append(_filler_line(rng, fmt))
            size += len(lines[-1]) + 1
        lines += ['  "end": true', "}"] if fmt == "json" else []
        corpus.files.append(CorpusFile(path, "\n".join(lines) + "\n"))
    for path, lines in lockfiles(maker):
        corpus.files.append(CorpusFile(path, "\n".join(lines) + "\n"))
        hashes = [
            n for n, line in enumerate(lines, 1) if re.search("sha512-|sha256:|checksum", line)
        ]
        corpus.labels += [Label(path, n, False, "lockfile-hash") for n in hashes]
    return corpus
