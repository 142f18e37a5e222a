"""The case table of tests/worker/test_secrets.py: for every rule, lines that must be found and
look-alikes that must not be. Every secret here is FAKE: random bodies from a seeded generator,
in the real formats (so they look exactly like real ones, which is the point)."""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass

_RNG = random.Random(20261125)  # reproducible fakes, not secrets
B62 = string.ascii_letters + string.digits
URLSAFE = B62 + "-_"
B64 = B62 + "+/"
HEX = "0123456789abcdef"
DIGITS = string.digits


def fake(alphabet: str, n: int) -> str:
    """n random characters of `alphabet`, from the seeded generator."""
    return "".join(_RNG.choices(alphabet, k=n))


def fake_jwt(alg: str = "HS256") -> str:
    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return (
        f"{part({'alg': alg, 'typ': 'JWT'})}.{part({'sub': fake(DIGITS, 8)})}.{fake(URLSAFE, 43)}"
    )


def pem_block(label: str = "RSA PRIVATE KEY") -> list[str]:
    body = [fake(B64, 64) for _ in range(6)] + [fake(B64, 30) + "=="]
    return [f"-----BEGIN {label}-----", *body, f"-----END {label}-----"]


@dataclass(frozen=True, slots=True)
class Case:
    rule: str  # the rule found (positives) or imitated (negatives)
    path: str
    text: str  # may span lines; positives: the secret is on `line`
    secret: str = ""  # positives: the raw value, which no Finding may show
    line: int = 1


def _p(rule: str, path: str, template: str, secret: str, line: int = 1) -> Case:
    return Case(rule, path, template.format(secret), secret, line)


ANT = fake(URLSAFE, 93) + "AA"
GITEA = fake(HEX, 40)
HUNTER = "Tr0ub4dor!3x"
KEY_BLOCK = pem_block()
AZURE = fake(B64, 86) + "=="

POSITIVES: dict[str, Case] = {
    "private-key-rsa": Case("private-key", "deploy/key.txt", "\n".join(KEY_BLOCK), KEY_BLOCK[1]),
    "private-key-openssh-in-python": Case(
        "private-key", "tests/keys.py",
        'KEY = """\\\n' + "\n".join(pem_block("OPENSSH PRIVATE KEY")) + '\n"""', line=2),
    "private-key-inline-json": Case(
        "private-key", "sa.json", '{"private_key": "' + "\\n".join(pem_block("PRIVATE KEY"))
        + '\\n"}'),
    "private-key-pgp": Case("private-key", "key.asc", "\n".join(
        ["-----BEGIN PGP PRIVATE KEY BLOCK-----", "", fake(B64, 64), "=ab12"])),
    "private-key-encrypted-legacy": Case("private-key", "k.pem", "\n".join(
        ["-----BEGIN RSA PRIVATE KEY-----", "Proc-Type: 4,ENCRYPTED", fake(B64, 64)])),
    "anthropic-api-key": _p("anthropic-api-key", "app.py", 'ANTHROPIC_API_KEY = "{}"',
                            "sk-ant-api03-" + ANT),
    "anthropic-api-key-example-name": _p("anthropic-api-key", ".env", "EXAMPLE_KEY={}",
                                         "sk-ant-api03-" + fake(URLSAFE, 93) + "AA"),
    "anthropic-admin-key": _p("anthropic-admin-key", "ops.sh", "export KEY={}",
                              "sk-ant-admin01-" + fake(URLSAFE, 93) + "AA"),
    "anthropic-oauth-token": _p("anthropic-oauth-token", ".env", "CLAUDE_CODE_OAUTH_TOKEN={}",
                                "sk-ant-oat01-" + fake(URLSAFE, 93) + "AA"),
    "openai-legacy": _p("openai-api-key", "bot.js", 'const key = "{}";',
                        "sk-" + fake(B62, 20) + "T3BlbkFJ" + fake(B62, 20)),
    "openai-project": _p("openai-api-key", "cfg.yaml", "openai: {}",
                         "sk-proj-" + fake(URLSAFE, 74) + "T3BlbkFJ" + fake(URLSAFE, 74)),
    "openai-service-account": _p("openai-service-account-key", "a.py", 'k = "{}"',
                                 "sk-svcacct-" + fake(URLSAFE, 156)),
    "openai-admin": _p("openai-admin-key", "a.py", 'k = "{}"', "sk-admin-" + fake(URLSAFE, 156)),
    "aws-access-key-id": _p("aws-access-key-id", "creds.ini", "aws_access_key_id = {}",
                            "AKIA" + fake(string.ascii_uppercase + "234567", 16)),
    "aws-session-key-id": _p("aws-access-key-id", "a.json", '{{"AccessKeyId": "{}"}}',
                             "ASIA" + fake(string.ascii_uppercase + "234567", 16)),
    "aws-secret-ini": _p("aws-secret-access-key", "credentials.cfg",
                         "aws_secret_access_key = {}", fake(B64, 40)),
    "aws-secret-json": _p("aws-secret-access-key", "out.json", '  "SecretAccessKey": "{}",',
                          fake(B64, 40)),
    "aws-secret-cli": _p("aws-secret-access-key", "setup.sh",
                         "aws configure set aws_secret_access_key {}", fake(B64, 40)),
    "github-classic": _p("github-classic-token", "ci.yml", "token: {}", "ghp_" + fake(B62, 36)),
    "github-classic-test-name": _p("github-classic-token", "t.py", 'TEST_TOKEN = "{}"',
                                   "ghp_" + fake(B62, 36)),
    "github-fine-grained": _p("github-fine-grained-token", ".env", "GH={}",
                              "github_pat_11" + fake(B62, 20) + "_" + fake(B62, 59)),
    "github-oauth": _p("github-oauth-token", "a.py", 't = "{}"', "gho_" + fake(B62, 36)),
    "github-user": _p("github-user-token", "a.py", 't = "{}"', "ghu_" + fake(B62, 36)),
    "github-app": _p("github-app-token", "a.py", 't = "{}"', "ghs_" + fake(B62, 36)),
    "github-refresh": _p("github-refresh-token", "a.py", 't = "{}"', "ghr_" + fake(B62, 36)),
    "gitlab-pat": _p("gitlab-personal-access-token", ".env", "GITLAB_TOKEN={}",
                     "glpat-" + fake(URLSAFE, 20)),
    "gitlab-deploy": _p("gitlab-token", ".env", "T={}", "gldt-" + fake(URLSAFE, 20)),
    "gitlab-runner": _p("gitlab-token", "c.toml", 'token = "{}"', "glrt-" + fake(URLSAFE, 20)),
    "gitlab-trigger": _p("gitlab-token", "c.sh", "curl -F token={} x", "glptt-" + fake(HEX, 40)),
    "gitea-env": _p("gitea-access-token", ".env", "GITEA_TOKEN={}", GITEA),
    "gitea-header": _p("gitea-access-token", "api.py",
                       'headers = {{"Authorization": "token {}"}}', fake(HEX, 40)),
    "forgejo-yaml": _p("gitea-access-token", "cfg.yaml", "forgejo_access_token: {}", fake(HEX, 40)),
    "slack-bot": _p("slack-bot-token", "a.py", 'SLACK = "{}"',
                    f"xoxb-{fake(DIGITS, 12)}-{fake(DIGITS, 13)}-{fake(B62, 24)}"),
    "slack-user": _p("slack-user-token", "a.py", 'SLACK = "{}"',
                     f"xoxp-{fake(DIGITS, 12)}-{fake(DIGITS, 12)}-{fake(DIGITS, 13)}-"
                     + fake(HEX, 32)),
    "slack-refresh": _p("slack-token", "a.py", 'SLACK = "{}"', f"xoxe-1-{fake(B62, 140)}"),
    "slack-app": _p("slack-app-token", "a.py", 'SLACK = "{}"',
                    f"xapp-1-A{fake(DIGITS, 10)}-{fake(DIGITS, 13)}-{fake(HEX, 64)}"),
    "slack-webhook": _p("slack-webhook-url", "n.js", 'post("{}")',
                        f"https://hooks.slack.com/services/T{fake(DIGITS, 8)}/B{fake(DIGITS, 10)}"
                        f"/{fake(B62, 24)}"),
    "google-api-key": _p("google-api-key", "m.html", '<script src="maps.js?key={}">',
                         "AIza" + fake(URLSAFE, 35)),
    "stripe-live": _p("stripe-secret-key", "pay.rb", "Stripe.api_key = '{}'",
                      "sk_live_" + fake(B62, 24)),
    "stripe-restricted": _p("stripe-restricted-key", "a.py", 'k = "{}"',
                            "rk_live_" + fake(B62, 99)),
    "stripe-test": _p("stripe-test-key", "a.py", 'k = "{}"', "sk_test_" + fake(B62, 99)),
    "stripe-webhook": _p("stripe-webhook-secret", ".env", "S={}", "whsec_" + fake(B62, 32)),
    "telegram-bot-token": _p("telegram-bot-token", "bot.py", 'Bot("{}")',
                             f"{fake(DIGITS[1:], 1)}{fake(DIGITS, 9)}:AA{fake(URLSAFE, 33)}"),
    "telegram-in-url": _p("telegram-bot-token", "a.sh", "curl https://api.telegram.org/bot{}/getMe",
                          f"7{fake(DIGITS, 9)}:AA{fake(URLSAFE, 33)}"),
    "npm-token": _p("npm-access-token", ".npmrc", "//registry.npmjs.org/:_authToken={}",
                    "npm_" + fake(B62, 36)),
    "pypi-token": _p("pypi-token", ".pypirc", "password = {}",
                     "pypi-AgEIcHlwaS5vcmc" + fake(URLSAFE, 150)),
    "sendgrid": _p("sendgrid-api-key", "mail.py", 'KEY = "{}"',
                   f"SG.{fake(URLSAFE, 22)}.{fake(URLSAFE, 43)}"),
    "twilio-api-key": _p("twilio-api-key", ".env", "TWILIO_API_KEY={}", "SK" + fake(HEX, 32)),
    "twilio-auth-env": _p("twilio-auth-token", ".env", "TWILIO_AUTH_TOKEN={}", fake(HEX, 32)),
    "twilio-auth-client": _p("twilio-auth-token", "sms.py",
                             f'client = Client("AC{fake(HEX, 32)}", "{{}}")', fake(HEX, 32)),
    "azure-connection-string": _p(
        "azure-storage-account-key", "appsettings.json",
        '"Storage": "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={};'
        'EndpointSuffix=core.windows.net"', AZURE),
    "jwt": _p("json-web-token", "t.py", 'TOKEN = "{}"', fake_jwt()),
    "password-python": _p("password-assignment", "db.py", 'password = "{}"', HUNTER),
    "password-secret-word": _p("password-assignment", "db.py", 'password = "{}"',
                               "MySecretPass123!"),
    "password-json": _p("password-assignment", "c.json", '{{"dbPassword": "{}"}}', HUNTER),
    "password-yaml": _p("password-assignment", "c.yaml", "  password: {}", HUNTER),
    "password-dotenv": _p("password-assignment", ".env.local", "DB_PASSWORD={}", HUNTER),
    "password-passwd-ini": _p("password-assignment", "my.cnf", "passwd={}", HUNTER),
    "password-pwd-shell": _p("password-assignment", "run.sh", 'export SMTP_PWD="{}"', HUNTER),
    "password-kwarg": _p("password-assignment", "db.py", 'connect(user="a", password="{}")',
                         HUNTER),
    "password-annotated": _p("password-assignment", "s.py", 'password: str = "{}"', HUNTER),
    "password-go": _p("password-assignment", "c.go", 'cfg := Config{{Password: "{}"}}', HUNTER),
    "password-php": _p("password-assignment", "c.php", "$db_pass = '{}';", HUNTER),
    "password-xml": _p("password-assignment", "web.config", "<password>{}</password>", HUNTER),
    "password-connection-string": _p(
        "password-assignment", "Db.cs", 'var c = "Server=db;User Id=sa;Password={};";', HUNTER),
    "url-password": _p("url-password", "settings.py",
                       'DATABASE_URL = "postgres://app:{}@db.internal:5432/app"', HUNTER),
    "url-password-redis": _p("url-password", ".env", "REDIS_URL=redis://:{}@cache:6379/0",
                             fake(B62, 20)),
}  # fmt: skip

NEGATIVES: dict[str, Case] = {
    "pem-header-in-code": Case("private-key", "pem.py", "\n".join(
        ['if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):', "    return parse(line)"])),
    "pem-public-key": Case("private-key", "k.pub", "\n".join(pem_block("PUBLIC KEY"))),
    "pem-certificate": Case("private-key", "c.crt", "\n".join(pem_block("CERTIFICATE"))),
    "anthropic-truncated": Case("anthropic-api-key", ".env",
                                "KEY=sk-ant-api03-" + fake(URLSAFE, 20)),
    "anthropic-placeholder": Case("anthropic-api-key", ".env", "API_KEY=sk-ant-api03-..."),
    "anthropic-admin-placeholder": Case("anthropic-admin-key", ".env",
                                        "KEY=sk-ant-admin01-" + "x" * 95),
    "anthropic-oauth-placeholder": Case("anthropic-oauth-token", ".env",
                                        "TOKEN=sk-ant-oat01-<your-oauth-token>"),
    "openai-placeholder": Case("openai-api-key", ".env", "OPENAI_API_KEY=sk-your-key-here"),
    "openai-short": Case("openai-api-key", "a.py", 'k = "sk-' + fake(B62, 30) + '"'),
    "openai-task-id": Case("openai-api-key", "a.py", 'k = "task-' + fake(B62, 48) + '"'),
    "openai-svcacct-placeholder": Case("openai-service-account-key", "a.py",
                                       'k = "sk-svcacct-' + "X" * 60 + '"'),
    "openai-admin-sequence": Case("openai-admin-key", "a.py",
                                  'k = "sk-admin-' + "abcdefghij0123456789" * 3 + '"'),
    "aws-documentation-example": Case("aws-access-key-id", "a.ini",
                                      "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"),
    "aws-inside-word": Case("aws-access-key-id", "a.txt", "XAKIA" + fake("ABCDEFGHIJ", 16)),
    "aws-secret-documentation-example": Case(
        "aws-secret-access-key", "a.ini",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    "aws-secret-without-context": Case("aws-secret-access-key", "a.py",
                                       'blob = "' + fake(B64, 40) + '"'),
    "aws-secret-placeholder": Case("aws-secret-access-key", ".env",
                                   "AWS_SECRET_ACCESS_KEY=" + "x" * 40),
    "github-truncated": Case("github-classic-token", "a.py", 't = "ghp_' + fake(B62, 20) + '"'),
    "github-placeholder": Case("github-classic-token", "a.py", 't = "ghp_' + "x" * 36 + '"'),
    "github-pat-short": Case("github-fine-grained-token", "a.py",
                             't = "github_pat_' + fake(B62, 30) + '"'),
    "github-oauth-repeated": Case("github-oauth-token", "a.py", 't = "gho_' + "a" * 36 + '"'),
    "github-user-low-entropy": Case("github-user-token", "a.py", 't = "ghu_' + "ab" * 18 + '"'),
    "github-app-in-identifier": Case("github-app-token", "a.py", "x = my_ghs_" + fake(B62, 36)),
    "github-refresh-truncated": Case("github-refresh-token", "a.py",
                                     't = "ghr_' + fake(B62, 10) + '"'),
    "gitlab-truncated": Case("gitlab-personal-access-token", ".env",
                             "T=glpat-" + fake(URLSAFE, 12)),
    "gitlab-deploy-placeholder": Case("gitlab-token", ".env", "T=gldt-<your-deploy-token>"),
    "git-sha-commit": Case("gitea-access-token", "a.py", f'commit = "{GITEA}"'),
    "git-sha-checkout": Case("gitea-access-token", "a.sh", f"git checkout {GITEA}"),
    "git-sha-token-sha-key": Case("gitea-access-token", "a.yml", f"token_sha: {GITEA}"),
    "git-sha-actions": Case("gitea-access-token", "w.yml", f"- uses: actions/checkout@{GITEA}"),
    "gitea-token-zeros": Case("gitea-access-token", ".env", "GITEA_TOKEN=" + "0" * 40),
    "slack-bot-placeholder": Case("slack-bot-token", ".env", "SLACK_BOT_TOKEN=xoxb-your-bot-token"),
    "slack-user-xs": Case("slack-user-token", ".env", "T=xoxp-123456789012-" + "x" * 30),
    "slack-token-short": Case("slack-token", ".env", "T=xoxa-2-abc"),
    "slack-app-placeholder": Case("slack-app-token", ".env", "T=xapp-1-<app-level-token>"),
    "slack-webhook-documentation": Case(
        "slack-webhook-url", "a.md",
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    "google-truncated": Case("google-api-key", "a.js", 'key: "AIza' + fake(URLSAFE, 20) + '"'),
    "stripe-publishable": Case("stripe-secret-key", "a.js", 'pk = "pk_live_' + fake(B62, 24) + '"'),
    "stripe-placeholder": Case("stripe-secret-key", "a.py", 'k = "sk_live_' + "X" * 24 + '"'),
    "stripe-restricted-short": Case("stripe-restricted-key", "a.py", 'k = "rk_live_abc123"'),
    "stripe-test-placeholder": Case("stripe-test-key", "a.py", 'k = "sk_test_your_key_here_0000"'),
    "stripe-webhook-placeholder": Case("stripe-webhook-secret", ".env", "W=whsec_" + "*" * 32),
    "telegram-test-token": Case("telegram-bot-token", "t.py", 'Bot("42:TEST")'),
    "telegram-time": Case("telegram-bot-token", "a.py", 't = "12:34:56"'),
    "npm-env-var": Case("npm-access-token", "a.sh", "echo $npm_config_cache $npm_package_version"),
    "pypi-short": Case("pypi-token", ".env", "PYPI_TOKEN=pypi-AgEIcHlwaS5vcmc" + fake(URLSAFE, 20)),
    "sendgrid-placeholder": Case("sendgrid-api-key", "a.py",
                                 'k = "SG.' + "x" * 22 + "." + "x" * 43 + '"'),
    "twilio-sk-without-context": Case("twilio-api-key", "a.py", 'sku = "SK' + fake(HEX, 32) + '"'),
    "twilio-account-sid": Case("twilio-auth-token", ".env",
                               "TWILIO_ACCOUNT_SID=AC" + fake(HEX, 32)),
    "azure-short-key": Case("azure-storage-account-key", "a.cfg",
                            "AccountKey=" + fake(B64, 40) + "=="),
    "jwt-header-only": Case("json-web-token", "a.py", 'h = "eyJhbGciOiJIUzI1NiJ9"'),
    "jwt-not-json": Case("json-web-token", "a.py",
                         f't = "eyJ{fake(B62, 20)}.eyJ{fake(B62, 20)}.{fake(B62, 30)}"'),
    "password-env-reference": Case("password-assignment", "a.py",
                                   'password = os.environ["DB_PASSWORD"]'),
    "password-getenv": Case("password-assignment", "a.go", 'Password: os.Getenv("DB_PASSWORD"),'),
    "password-process-env": Case("password-assignment", "a.js", "password: process.env.DB_PW,"),
    "password-template": Case("password-assignment", "a.yaml", 'password: "{{ vault_password }}"'),
    "password-shell-var": Case("password-assignment", ".env", "DB_PASSWORD=${DB_PASSWORD}"),
    "password-format": Case("password-assignment", "a.py", 'password = "%(password)s"'),
    "password-angle": Case("password-assignment", "a.md", "PASSWORD=<your-password>"),
    "password-changeme": Case("password-assignment", ".env", "PASSWORD=changeme"),
    "password-stars": Case("password-assignment", "a.yaml", "password: '********'"),
    "password-none": Case("password-assignment", "a.py", "password = None"),
    "password-empty": Case("password-assignment", "a.py", 'password = ""'),
    "password-identifier": Case("password-assignment", "a.py", "password = new_password"),
    "password-hash": Case("password-assignment", "a.py",
                          'password_hash = "$2b$12$' + fake(B62, 53) + '"'),
    "password-min-length": Case("password-assignment", "a.yaml", "password_min_length: 12"),
    "password-label": Case("password-assignment", "en.json", '{"password": "Password"}'),
    "password-ui-text": Case("password-assignment", "a.py", 'password_help = "Use 12 characters"'),
    "password-field-name": Case("password-assignment", "f.py", 'password = "confirm_password"'),
    "password-default": Case("password-assignment", "compose.yaml", "POSTGRES_PASSWORD: postgres"),
    "password-comparison": Case("password-assignment", "a.py", 'if password == "hunter22":'),
    "password-bypass": Case("password-assignment", "a.py", 'bypass = "hunter22x"'),
    "password-path": Case("password-assignment", ".env", "PASSWORD_FILE=/run/secrets/db"),
    "password-redacted": Case("password-assignment", "a.py", 'password = "REDACTED"'),
    "password-call-in-docs": Case("password-assignment", "README.md",
                                  "password: str = Field(min_length=8)"),
    "password-regex": Case("password-assignment", "rules.py",
                           "key_or_pass = r'(?:key|pwd|password|pass|token)'"),
    "password-docstring-role": Case("password-assignment", "conn.py",
                                    "    pass :data:`h11.CLIENT`. If"),
    "url-password-same-as-user": Case("url-password", ".env",
                                      "DATABASE_URL=postgres://postgres:postgres@localhost/app"),
    "url-password-placeholder": Case("url-password", "a.py",
                                     'url = f"postgres://{user}:{password}@{host}/db"'),
    "url-password-env": Case("url-password", ".env", "URL=postgres://app:${DB_PASSWORD}@db/app"),
    "url-password-documentation-host": Case("url-password", "a.md",
                                            "mysql://admin:Sup3rS3cretPw@db.example.com/app"),
    "url-without-credentials": Case("url-password", "a.py", 'u = "https://example.org:8443/x"'),
}  # fmt: skip
