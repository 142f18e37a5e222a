"""The rule table that worker/secrets.py scans with: one Rule per kind of secret.

A rule is tried only on lines where one of its triggers occurs: `triggers` are looked for in
the text as it is, `lower_triggers` in the lower-cased text. Each is a regular expression that
begins with a literal character; worker/secrets.py merges the triggers that begin with the same
character into one regex, which the engine scans for at memchr-like speed, so the text is read
about twenty times in C, and a rule's own `pattern` runs only on the lines its triggers found.
No trigger may match where another trigger with the same first character matches too: rules
that would need that share one trigger, as all the "sk-" rules do.

Every pattern has a group "value", the secret (password-assignment: one of its literal
groups); `kind` says how worker/secrets.py vets a match. Where two rules match the same
characters of a line, the earlier rule is reported: provider formats come first, the context
rules (a key name before a generic value: AWS secret keys, Gitea and Twilio tokens) and the
password rules last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    PROVIDER = "provider"  # a provider's format: the part after the prefix must look random
    PRIVATE_KEY = "private-key"  # a PEM header: reported with its header as the masked value
    JWT = "jwt"  # a token whose header decodes to a JSON object
    ASSIGNMENT = "assignment"  # a password-ish key name with a literal value
    URL = "url"  # the password of a URL's user:password@host


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind of secret: how to find it cheaply, how to match it, how to vet the match."""

    id: str
    family: str
    description: str
    pattern: re.Pattern[str]
    triggers: tuple[str, ...] = ()  # regexes, each starting with a literal character
    lower_triggers: tuple[str, ...] = ()  # the same, looked for in the lower-cased text
    kind: Kind = Kind.PROVIDER
    context: tuple[str, ...] = ()  # the lower-cased line must also hold one of these
    key_needs: tuple[str, ...] = ()  # the lower-cased key name must hold one of these
    min_distinct: int = 0  # distinct characters the random part needs (0: a third of its length)


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def words(text: str) -> frozenset[str]:
    """The set of the whitespace-separated words of `text`."""
    return frozenset(text.split())


# Token edges: the character before and after a token must not continue it.
_L = r"(?<![A-Za-z0-9_-])"
_R = r"(?![A-Za-z0-9_-])"
# "key" = value, "key": value, key: value, key => value, key := value (the key may be quoted).
_SET = r"""["']?\s*(?::=|=>|=(?!=)|:(?![:=]))\s*["'`]?"""

# Triggers that look for a key's separator, and then a value, in the lower-cased text.
_LOWER_SET = r"""["']?[ \t]*[:=>]"""
_LOWER_VALUE = r"""(?:["']?[ \t]*[:=>]+|[ \t])[ \t]*["'`]?{}"""
_SK = r"sk-[A-Za-z0-9_-]{40}"  # every "sk-" key is longer than this

# Prefixes shown in a masked value: public, the same for every token of the kind.
KNOWN_PREFIX = _re(
    r"sk-ant-[a-z]{2,8}\d\d-|sk-(?:proj|svcacct|admin)-|gh[pousr]_|github_pat_"
    r"|gl[a-z]{2,7}-|(?:xoxe\.)?xox[a-z]-|xapp-|https://hooks\.slack\.com/[a-z]+/"
    r"|[rs]k_(?:live|test)_|whsec_|npm_|pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)"
    r"|AIza|SG\.|eyJ|AKIA|ASIA|ABIA|ACCA|sk-"
)

_ANTHROPIC = r"[A-Za-z0-9_-]{80,120}"
_OPENAI = r"[A-Za-z0-9_-]{40,250}"
_GITHUB = r"[A-Za-z0-9]{36,251}(?![A-Za-z0-9_])"

PROVIDER_RULES: tuple[Rule, ...] = (
    Rule("private-key", "private-key",
         "A PEM private key (RSA, EC, DSA, OpenSSH, PKCS#8, encrypted, PGP).",
         _re(r"-----BEGIN (?P<value>(?:[A-Z0-9]+ ){0,2}PRIVATE KEY(?: BLOCK)?)-----"),
         triggers=("PRIVATE KEY",), kind=Kind.PRIVATE_KEY),
    Rule("anthropic-api-key", "anthropic", "An Anthropic API key (sk-ant-api03-...).",
         _re(_L + r"(?P<value>sk-ant-api\d\d-" + _ANTHROPIC + ")" + _R),
         triggers=(_SK,)),
    Rule("anthropic-admin-key", "anthropic", "An Anthropic Admin API key (sk-ant-admin01-...).",
         _re(_L + r"(?P<value>sk-ant-admin\d\d-" + _ANTHROPIC + ")" + _R),
         triggers=(_SK,)),
    Rule("anthropic-oauth-token", "anthropic",
         "An Anthropic OAuth access or refresh token (sk-ant-oat01-..., sk-ant-ort01-...).",
         _re(_L + r"(?P<value>sk-ant-o[ar]t\d\d-" + _ANTHROPIC + ")" + _R),
         triggers=(_SK,)),
    Rule("openai-api-key", "openai", "An OpenAI API key: legacy sk- + 48, or sk-proj-.",
         _re(_L + r"(?P<value>sk-(?:proj-" + _OPENAI + r"|[A-Za-z0-9]{48}))" + _R),
         triggers=(_SK,)),
    Rule("openai-service-account-key", "openai", "An OpenAI service account key (sk-svcacct-).",
         _re(_L + r"(?P<value>sk-svcacct-" + _OPENAI + ")" + _R),
         triggers=(_SK,)),
    Rule("openai-admin-key", "openai", "An OpenAI admin key (sk-admin-).",
         _re(_L + r"(?P<value>sk-admin-" + _OPENAI + ")" + _R),
         triggers=(_SK,)),
    Rule("aws-access-key-id", "aws", "An AWS access key id (AKIA, ASIA, ABIA, ACCA + 16).",
         _re(r"(?<![A-Za-z0-9])(?P<value>(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})(?![A-Za-z0-9])"),
         triggers=("A(?:KIA|SIA|BIA|CCA)",), min_distinct=5),
    Rule("github-classic-token", "github", "A GitHub personal access token, classic (ghp_).",
         _re(_L + r"(?P<value>ghp_" + _GITHUB + ")"), triggers=("ghp_",)),
    Rule("github-fine-grained-token", "github",
         "A GitHub fine-grained personal access token (github_pat_).",
         _re(_L + r"(?P<value>github_pat_[A-Za-z0-9_]{70,255})(?![A-Za-z0-9_])"),
         triggers=("github_pat_",)),
    Rule("github-oauth-token", "github", "A GitHub OAuth access token (gho_).",
         _re(_L + r"(?P<value>gho_" + _GITHUB + ")"), triggers=("gho_",)),
    Rule("github-user-token", "github", "A GitHub App user-to-server token (ghu_).",
         _re(_L + r"(?P<value>ghu_" + _GITHUB + ")"), triggers=("ghu_",)),
    Rule("github-app-token", "github", "A GitHub App installation token (ghs_).",
         _re(_L + r"(?P<value>ghs_" + _GITHUB + ")"), triggers=("ghs_",)),
    Rule("github-refresh-token", "github", "A GitHub App refresh token (ghr_).",
         _re(_L + r"(?P<value>ghr_" + _GITHUB + ")"), triggers=("ghr_",)),
    Rule("gitlab-personal-access-token", "gitlab", "A GitLab personal access token (glpat-).",
         _re(_L + r"(?P<value>glpat-[A-Za-z0-9_-]{20,255}(?:\.[0-9a-z]{2}\.[0-9a-z]{5,12})?)"
             + _R), triggers=("glpat-",)),
    Rule("gitlab-token", "gitlab",
         "Another GitLab token: deploy (gldt-), runner (glrt-), pipeline trigger (glptt-), "
         "feed, incoming mail, agent, CI job, OAuth app, SCIM, feature flag, workspace.",
         _re(_L + r"(?P<value>gl(?:dt|rtr?|ptt|ft|imt|agent|cbt|oas|soat|ffct|wt)"
             r"-[A-Za-z0-9_-]{20,255})" + _R),
         triggers=("gl(?:dt|rtr?|ptt|ft|imt|agent|cbt|oas|soat|ffct|wt)-",)),
    Rule("slack-bot-token", "slack", "A Slack bot token (xoxb-).",
         _re(_L + r"(?P<value>xoxb-[0-9]{6,15}-[A-Za-z0-9-]{20,250})" + _R),
         triggers=("xoxb-",)),
    Rule("slack-user-token", "slack", "A Slack user token (xoxp-, rotating xoxe.xoxp-).",
         _re(_L + r"(?P<value>(?:xoxe\.)?xoxp-[0-9]{1,15}-[A-Za-z0-9-]{20,250})" + _R),
         triggers=("xoxp-",)),
    Rule("slack-token", "slack", "Another Slack token (xoxa-, xoxr-, xoxe-, xoxs-, xoxo-).",
         _re(_L + r"(?P<value>xox[aeors]-[0-9]{1,15}-[A-Za-z0-9-]{20,250})" + _R),
         triggers=("xox[aeors]-",)),
    Rule("slack-app-token", "slack", "A Slack app-level token (xapp-).",
         _re(_L + r"(?P<value>xapp-[0-9]-[A-Za-z0-9-]{40,250})" + _R), triggers=("xapp-",)),
    Rule("slack-webhook-url", "slack", "A Slack incoming webhook URL (hooks.slack.com).",
         _re(r"(?P<value>https://hooks\.slack\.com/(?:services|workflows|triggers)"
             r"/T[A-Z0-9]{8,12}/[A-Z0-9]{8,12}/[A-Za-z0-9]{20,40})(?![A-Za-z0-9])"),
         triggers=(r"hooks\.slack\.com",)),
    Rule("google-api-key", "google", "A Google API key (AIza + 35).",
         _re(_L + r"(?P<value>AIza[A-Za-z0-9_-]{35})" + _R), triggers=("AIza",)),
    Rule("stripe-secret-key", "stripe", "A Stripe live secret key (sk_live_).",
         _re(_L + r"(?P<value>sk_live_[A-Za-z0-9]{20,247})" + _R), triggers=("k_live_",)),
    Rule("stripe-restricted-key", "stripe", "A Stripe live restricted key (rk_live_).",
         _re(_L + r"(?P<value>rk_live_[A-Za-z0-9]{20,247})" + _R), triggers=("k_live_",)),
    Rule("stripe-test-key", "stripe",
         "A Stripe test-mode secret or restricted key (sk_test_, rk_test_): no money moves, "
         "but it reads and changes the account's test data, so it is a credential too.",
         _re(_L + r"(?P<value>[rs]k_test_[A-Za-z0-9]{20,247})" + _R), triggers=("k_test_",)),
    Rule("stripe-webhook-secret", "stripe", "A Stripe webhook signing secret (whsec_).",
         _re(_L + r"(?P<value>whsec_[A-Za-z0-9+/]{32,88})" + _R), triggers=("whsec_",)),
    Rule("telegram-bot-token", "telegram", "A Telegram bot token (bot id:AA + 33).",
         _re(r"(?<![0-9])(?P<value>[0-9]{8,10}:AA[A-Za-z0-9_-]{33})" + _R),
         triggers=(":AA",)),
    Rule("npm-access-token", "npm", "An npm access token (npm_ + 36).",
         _re(_L + r"(?P<value>npm_[A-Za-z0-9]{36})" + _R), triggers=("npm_",)),
    Rule("pypi-token", "pypi", "A PyPI or TestPyPI API token (pypi-AgEIcHlwaS5vcmc...).",
         _re(_L + r"(?P<value>pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,})"
             + _R), triggers=("pypi-AgE",)),
    Rule("sendgrid-api-key", "sendgrid", "A SendGrid API key (SG.<22>.<43>).",
         _re(r"(?<![A-Za-z0-9_.-])(?P<value>SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})"
             r"(?![A-Za-z0-9_.-])"), triggers=(r"SG\.",)),
    Rule("twilio-api-key", "twilio",
         "A Twilio API key SID (SK + 32 hex) on a line that speaks of Twilio, a SID or a key.",
         _re(r"(?<![A-Za-z0-9])(?P<value>SK[0-9a-f]{32})(?![A-Za-z0-9])"),
         triggers=("SK[0-9a-f]{32}",),
         context=("twilio", "sid", "api_key", "apikey", "api-key"), min_distinct=8),
    Rule("azure-storage-account-key", "azure",
         "An Azure storage account key (88 base64 characters) after AccountKey= or a "
         "storage key name.",
         _re(r"(?i:AccountKey|storage[_.-]?(?:account[_.-]?)?(?:access[_.-]?)?key)" + _SET
             + r"(?P<value>[A-Za-z0-9+/]{86}==)(?![A-Za-z0-9+/=])"),
         triggers=("ccountKey",), lower_triggers=("storage",)),
    Rule("json-web-token", "jwt", "A signed JSON Web Token (eyJ... . eyJ... . signature).",
         _re(_L + r"(?P<value>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})"
             + _R), triggers=(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ",), kind=Kind.JWT),
)  # fmt: skip

# The context rules start at their keyword; worker/secrets.py reads the rest of the key name
# backwards from there, so "key" below is only the part after the keyword.
CONTEXT_RULES: tuple[Rule, ...] = (
    Rule("aws-secret-access-key", "aws",
         "An AWS secret access key: 40 base64 characters after an aws_secret / "
         "secret_access_key name.",
         _re(r"(?i:secret)(?P<key>[\w.-]*)"
             r"""(?:["']?\s*(?::=|=>|=(?!=)|:(?![:=])|\s)\s*["'`]?)"""
             r"(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"),
         lower_triggers=(r"secret[\w.-]*" + _LOWER_VALUE.format(r"[a-z0-9/+]{40}"),),
         min_distinct=12, key_needs=("aws", "access")),
    Rule("gitea-access-token", "gitea",
         "A Gitea or Forgejo access token: 40 hex characters after a gitea, forgejo or token "
         "name, or in an Authorization: token|bearer header (a bare git SHA is not one).",
         _re(r"(?i:gitea|forgejo|token|bearer)(?P<key>[\w.-]*)(?:" + _SET + r"|\s+)"
             r"(?P<value>[0-9a-f]{40})(?![A-Za-z0-9])"),
         lower_triggers=tuple(word + r"[\w.-]*" + _LOWER_VALUE.format("[0-9a-f]{40}")
                              for word in ("token", "gitea", "forgejo", "bearer")),
         min_distinct=8),
    Rule("twilio-auth-token", "twilio",
         "A Twilio auth token: 32 hex characters after a twilio ... token name, or next to "
         "an account SID (AC + 32 hex).",
         _re(r"(?:(?i:twilio)(?P<key>[\w.-]{0,30}(?i:token)\w*)" + _SET
             + r"""|AC[0-9a-f]{32}["']?\s*,\s*["']?)(?P<value>[0-9a-f]{32})(?![A-Za-z0-9])"""),
         triggers=(r"AC[0-9a-f]{32}",), lower_triggers=("twilio",), min_distinct=8),
)  # fmt: skip

# A key name holding a password (db_password, DB_PASS, dbPassword, "password", --password),
# matched from its keyword on; the value: a quoted literal, or a bare one (config files).
_LITERAL = (
    r"""(?:[rRbBuUfF]{0,2}"(?P<dq>(?:[^"\\]|\\.)*)"|[rRbBuUfF]{0,2}'(?P<sq>(?:[^'\\]|\\.)*)'"""
    r"|`(?P<bq>[^`]*)`|(?P<bare>[^\s\"'`,;&()\]}]++)(?!\())"
)
_CREDENTIALS = r"""[^\s:/@?#"'<>\\`]"""
PASSWORD_RULES: tuple[Rule, ...] = (
    Rule("password-assignment", "password",
         "A hard-coded password: a literal after a password, passwd, pwd or passphrase key "
         "(code, JSON, YAML, .env, INI, XML, connection strings).",
         _re(r"(?i:pass(?:word|wd|phrase)?|pwd)(?P<key>[\w.-]*)"
             r"""(?:["']?\s*(?P<op>:\s*[A-Za-z_][\w\[\], .|]{0,60}?=(?!=)|:=|=>|=(?!=)|:(?![:=]))"""
             r"\s*" + _LITERAL + r"|>(?P<xml>[^<\s]+)</)"),
         lower_triggers=(r"pass[\w.-]*" + _LOWER_SET, r"pwd[\w.-]*" + _LOWER_SET),
         kind=Kind.ASSIGNMENT),
    Rule("url-password", "password",
         "A password in a URL's credentials (scheme://user:password@host).",
         _re(r"://(?P<user>" + _CREDENTIALS + r"{0,64}):(?P<value>" + _CREDENTIALS
             + r"{1,128})@(?P<host>[A-Za-z0-9\[{$%_][^\s/?#\"'<>`]*)"),
         triggers=(r"://" + _CREDENTIALS + r"{0,64}:" + _CREDENTIALS + r"{1,128}@",),
         kind=Kind.URL),
)  # fmt: skip

RULES: tuple[Rule, ...] = PROVIDER_RULES + CONTEXT_RULES + PASSWORD_RULES

# Words that, as the last word of a password-ish key, say the value is not a password.
NOT_A_PASSWORD_KEY = words(
    "hash hashed digest salt length len min max minlength maxlength regex re pattern policy "
    "rule rules validator validation label message msg prompt help hint text title "
    "placeholder field fields column col name names id type format mode strength score "
    "reset url uri path file dir env var variable command cmd enabled disabled required "
    "changed expires expiry expiration age days ttl timeout attempts retries count rounds "
    "iterations error errors invalid mismatch template view form input widget selector "
    "button icon link page route endpoint handler callback manager service provider store "
    "storage backend class method function func spec header headers prefix suffix param "
    "params option options flag flags setting settings config description desc doc docs "
    "rate through thru host port server user username email login keyword keywords"
)
# Words of a token's key name that say the value is a checksum or a commit, not a secret.
NOT_A_TOKEN_KEY = words("sha sha1 commit hash digest checksum rev revision etag integrity")
# Parts of a value that mark it as a placeholder (looked for in the lower-cased value).
PLACEHOLDER_PARTS = (
    "example", "dummy", "placeholder", "redacted", "changeme", "change_me", "change-me",
    "replace_me", "replaceme", "replace-me", "your_", "your-", "yourpass", "yourtoken",
    "yourkey", "yoursecret", "insert_", "insert-", "_here", "-here", "xxxx", "****", "••••",
    "....", "…", "####", "${", "{{", "%(", "os.environ", "getenv", "process.env", "env(",
    "env[", "environ[", "vault:", "secretref",
)  # fmt: skip
# Values that are words, not secrets: a key echoed, a type, a well-known local default.
PLACEHOLDER_VALUES = words(
    "none null nil undefined true false yes no on off string str text hidden required "
    "optional password passwd pass pwd passphrase username user login admin root postgres "
    "mysql mariadb redis guest test testing demo default sample fake qwerty letmein"
)
SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl")
