"""Checks on uploaded credential/config files before anything is stored.

Allowed: JSON, YAML (mappings/lists), PEM (certificates and keys), .env-style and plain UTF-8 text, up to
FILE_MAX_BYTES each. The kind is sniffed from the bytes; the file name is only sanitised. Everything else is
refused with a FileRejected (code, message, HTTP status) whose message never quotes the content:
archives of any kind (zip, gzip, tar, 7z, rar, bzip2, xz, zstd; we never decompress, so a zip bomb is just an
archive), executables (ELF, PE, Mach-O, Java class, wasm), scripts (shebang, batch, PowerShell, VBScript,
JScript/HTML, shell/Python one-liners), PDFs and Office documents, polyglots (text carrying an archive or
executable signature anywhere), NUL bytes and other binary data.

JSON credential files with a known shape (Google OAuth client, service account, authorized user) must carry
the fields their consumers need; the missing ones are named.
"""

import base64
import binascii
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.conf import settings


@dataclass
class FileRejected(Exception):
    code: str
    message: str
    status: int = 400
    details: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class CheckedFile:
    filename: str
    content_type: str
    detected: str
    size: int


MAX_FILENAME_BYTES = 255
_UNSUPPORTED = 415
_TOO_LARGE = 413

# Leading signatures (offset 0 unless noted).
_MAGIC: list[tuple[bytes, str, str]] = [
    (b"PK\x03\x04", "archive", "zip archive (or Office/JAR/APK)"),
    (b"PK\x05\x06", "archive", "zip archive"),
    (b"PK\x07\x08", "archive", "zip archive"),
    (b"\x1f\x8b", "archive", "gzip archive"),
    (b"BZh", "archive", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "archive", "xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "archive", "7z archive"),
    (b"Rar!\x1a\x07", "archive", "rar archive"),
    (b"\x28\xb5\x2f\xfd", "archive", "zstd archive"),
    (b"MSCF", "archive", "cab archive"),
    (b"\x7fELF", "executable", "ELF executable"),
    (b"MZ", "executable", "Windows executable (PE/MZ)"),
    (b"\xfe\xed\xfa\xce", "executable", "Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "executable", "Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "executable", "Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "executable", "Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "executable", "Mach-O universal binary or Java class"),
    (b"\x00asm", "executable", "WebAssembly module"),
    (b"%PDF", "document", "PDF document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "document", "Office (OLE2) document"),
    (b"{\\rtf", "document", "RTF document"),
]
# Signatures that make a file a polyglot wherever they occur.
_EMBEDDED: list[tuple[bytes, str, str]] = [
    (b"PK\x03\x04", "archive", "an embedded zip archive"),
    (b"PK\x01\x02", "archive", "an embedded zip central directory"),
    (b"PK\x05\x06", "archive", "an embedded zip archive"),
    (b"\x7fELF", "executable", "an embedded ELF executable"),
    (b"This program cannot be run in DOS mode", "executable", "an embedded Windows executable"),
    (b"\x1f\x8b\x08", "archive", "embedded gzip data"),
    (b"Rar!\x1a\x07", "archive", "an embedded rar archive"),
    (b"7z\xbc\xaf\x27\x1c", "archive", "an embedded 7z archive"),
]
# Script heuristics on the decoded text (not applied inside PEM base64 bodies).
_SCRIPT_PATTERNS = [
    (re.compile(r"^\s*@?echo\s+off\b", re.I | re.M), "a Windows batch script"),
    (re.compile(r"Invoke-Expression|\bIEX\b\s*[(\$]|-EncodedCommand\b|DownloadString\s*\(|Net\.WebClient|"
                r"Start-Process\b|Set-ExecutionPolicy\b|FromBase64String\s*\(", re.I), "a PowerShell script"),
    (re.compile(r"WScript\.|CreateObject\s*\(|ActiveXObject|Shell\.Application|\bOn\s+Error\s+Resume\s+Next\b|"
                r"^\s*End\s+(?:Sub|Function)\b", re.I | re.M), "a VBScript/JScript script"),
    (re.compile(r"<\s*(?:script|html|hta:application|iframe|object|embed)\b", re.I), "HTML or a script"),
    (re.compile(r"require\s*\(\s*['\"](?:child_process|fs|net|http)['\"]|\beval\s*\(|new\s+Function\s*\(|"
                r"\bfunction\s*\w*\s*\([^)]*\)\s*\{", re.I), "a JavaScript script"),
    (re.compile(r"\b(?:curl|wget)\b[^\n]*\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b|/dev/tcp/|\bnc\s+-[a-z]*e\b|"
                r"\bbash\s+-[a-z]*c\b|\brm\s+-rf\s+/", re.I), "a shell script"),
    (re.compile(r"\bos\.system\s*\(|\bsubprocess\.\w+\s*\(|__import__\s*\(|\bexec\s*\(", re.I), "a Python script"),
    (re.compile(r"!!python/|!!js/|!ruby/|!!java", re.I), "YAML with code-executing tags"),
]
# Lines only a batch file has (so a notes file whose lines start with "Set up" or "If you" is not one).
_BATCH_COMMAND_RE = re.compile(
    r"^\s*@?(?:set\s+/?[A-Za-z_]\w*\s*=|call\s+\S|goto\s+:?\w+\s*$|if\s+(?:not\s+)?(?:exist|errorlevel|defined)\b|"
    r"for\s+(?:/[a-z]\s+)?%%|del\s+/|copy\s+/|start\s+\"|(?:cmd|powershell)(?:\.exe)?\s+[/-]|reg\s+(?:add|delete)\b|"
    r"certutil\s+-|bitsadmin\s+/)|^\s*:[A-Za-z_]\w*\s*$",
    re.I | re.M,
)
_PEM_BLOCK_RE = re.compile(
    r"-----BEGIN ([A-Z0-9 ]{1,60})-----\r?\n(.*?)\r?\n?-----END \1-----", re.S
)
_ENV_LINE_RE = re.compile(r"^(?:export\s+)?[A-Za-z_][A-Za-z0-9_.]*\s*=.*$")
_DANGEROUS_EXTENSIONS = {
    "exe", "dll", "so", "dylib", "com", "scr", "msi", "bat", "cmd", "ps1", "psm1", "vbs", "vbe", "js", "jse",
    "wsf", "wsh", "hta", "jar", "apk", "app", "sh", "bash", "zsh", "py", "pl", "rb", "php", "lnk", "zip", "gz",
    "tgz", "tar", "7z", "rar", "bz2", "xz", "zst", "iso", "dmg", "pdf", "doc", "docx", "docm", "xls", "xlsx",
    "xlsm", "ppt", "pptx", "pptm", "rtf", "html", "htm", "svg",
}
# libyaml when available: the pure-Python parser takes ~20 s on a 1 MB mapping, libyaml ~1 s.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_JSON_DEPTH = 64
_MAX_YAML_ALIASES = 50


def decode_base64(content: Any) -> bytes:
    """Strict base64 (standard alphabet, correct padding); line breaks from MIME-style wrapping are allowed."""
    if not isinstance(content, str):
        raise FileRejected("invalid_base64", "File content must be a base64 string.")
    compact = re.sub(r"[\r\n\t ]+", "", content)
    max_bytes = settings.FILE_MAX_BYTES
    if len(compact) > 4 * ((max_bytes + 2) // 3):
        raise FileRejected("file_too_large", f"The file is larger than {max_bytes} bytes.", _TOO_LARGE)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise FileRejected("invalid_base64", "File content is not valid base64 (standard alphabet, padded).") from None
    return data


def sanitise_filename(name: Any) -> str:
    """The base name, NFC-normalised. Traversal, absolute paths, control/invisible characters, NUL, names that
    are too long and executable/archive/document extensions are refused rather than repaired."""
    if not isinstance(name, str) or not name.strip():
        raise FileRejected("invalid_filename", "A file name is required.")
    name = unicodedata.normalize("NFC", name.strip())
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise FileRejected("invalid_filename", "The file name contains control or invisible characters.")
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", name):
        raise FileRejected("invalid_filename", "The file name must not be an absolute path.")
    if any(part in ("..", ".") for part in parts):
        raise FileRejected("invalid_filename", "The file name must not contain '..' or '.' path components.")
    base = parts[-1]
    if not base or base.startswith("."):
        if base not in (".env",) and not base.startswith(".env."):
            raise FileRejected("invalid_filename", "The file name must not be empty or hidden (start with '.').")
    if len(base.encode("utf-8")) > MAX_FILENAME_BYTES:
        raise FileRejected("invalid_filename", f"The file name is longer than {MAX_FILENAME_BYTES} bytes.")
    extensions = {ext.lower() for ext in base.split(".")[1:]}
    if extensions & _DANGEROUS_EXTENSIONS:
        raise FileRejected(
            "unsupported_file_type",
            "Files named as executables, scripts, archives or documents are not accepted.",
            _UNSUPPORTED,
        )
    return base


def _reject_kind(kind: str, what: str) -> FileRejected:
    messages = {
        "archive": f"Archives are not accepted ({what}).",
        "executable": f"Executables are not accepted ({what}).",
        "document": f"PDF and Office documents are not accepted ({what}).",
    }
    return FileRejected(f"{kind}_not_allowed", messages[kind], _UNSUPPORTED, {"detected": what})


def _sniff_binary(data: bytes) -> None:
    for magic, kind, what in _MAGIC:
        if data.startswith(magic):
            raise _reject_kind(kind, what)
    if len(data) > 262 and data[257:262] == b"ustar":
        raise _reject_kind("archive", "tar archive")
    for magic, kind, what in _EMBEDDED:
        if magic in data:
            raise FileRejected(
                "polyglot_not_allowed", f"The file contains {what}.", _UNSUPPORTED, {"detected": kind}
            )
    if b"%PDF-" in data[:1024]:
        raise _reject_kind("document", "PDF document")
    if b"\x00" in data:
        raise FileRejected("binary_not_allowed", "The file contains NUL bytes (binary data is not accepted).", _UNSUPPORTED)


def _decode_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileRejected(
            "binary_not_allowed", "The file is not UTF-8 text (binary data is not accepted).", _UNSUPPORTED
        ) from None
    text = text.removeprefix("\ufeff")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f" for ch in text):
        raise FileRejected("binary_not_allowed", "The file contains control characters.", _UNSUPPORTED)
    return text


def _check_scripts(text: str) -> None:
    if text.lstrip().startswith("#!"):
        raise FileRejected("script_not_allowed", "Scripts are not accepted (shebang line).", _UNSUPPORTED)
    for regex, what in _SCRIPT_PATTERNS:
        if regex.search(text):
            raise FileRejected("script_not_allowed", f"Scripts are not accepted (looks like {what}).", _UNSUPPORTED)
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and sum(1 for line in lines if _BATCH_COMMAND_RE.match(line)) >= max(2, len(lines) // 2):
        raise FileRejected("script_not_allowed", "Scripts are not accepted (looks like a Windows batch script).", _UNSUPPORTED)


def _json_depth(value: Any, depth: int = 0) -> int:
    if depth > _MAX_JSON_DEPTH:
        return depth
    if isinstance(value, dict):
        return max((_json_depth(v, depth + 1) for v in value.values()), default=depth + 1)
    if isinstance(value, list):
        return max((_json_depth(v, depth + 1) for v in value), default=depth + 1)
    return depth


def _require(obj: dict, fields: list[str], prefix: str = "") -> list[str]:
    return [f"{prefix}{name}" for name in fields if not (isinstance(obj.get(name), str) and obj[name].strip())]


def _check_credential_json(doc: Any) -> str:
    """Known credential file shapes: the kind, or FileRejected naming the missing fields."""
    if not isinstance(doc, dict):
        return "json"
    missing: list[str] = []
    detected = "json"
    if doc.get("type") == "service_account":
        detected = "google_service_account"
        missing = _require(doc, ["project_id", "private_key", "client_email", "token_uri"])
        key = doc.get("private_key")
        if "private_key" not in missing and not (
            isinstance(key, str) and "-----BEGIN PRIVATE KEY-----" in key and "-----END PRIVATE KEY-----" in key
        ):
            missing.append("private_key (PEM)")
    elif doc.get("type") == "authorized_user":
        detected = "google_authorized_user"
        missing = _require(doc, ["client_id", "client_secret", "refresh_token"])
    elif set(doc) & {"installed", "web"} and len(doc) == 1:
        section = "installed" if "installed" in doc else "web"
        detected = "google_oauth_client"
        inner = doc[section]
        if not isinstance(inner, dict):
            missing = [section]
        else:
            missing = _require(inner, ["client_id", "client_secret", "auth_uri", "token_uri"], f"{section}.")
    if missing:
        raise FileRejected(
            "invalid_credential_file",
            f"This looks like a {detected.replace('_', ' ')} file but lacks: {', '.join(missing)}.",
            400,
            {"detected": detected, "missing": missing},
        )
    return detected


def _parse_json(text: str) -> Any:
    try:
        doc = json.loads(text)
    except RecursionError:
        raise FileRejected("invalid_file", "The JSON is nested too deeply.") from None
    if _json_depth(doc) > _MAX_JSON_DEPTH:
        raise FileRejected("invalid_file", "The JSON is nested too deeply.")
    return doc


def _parse_yaml(text: str) -> Any:
    aliases = 0
    try:
        for event in yaml.parse(text, Loader=_YAML_LOADER):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > _MAX_YAML_ALIASES:
                    raise FileRejected(
                        "invalid_file", "The YAML uses too many aliases (possible alias bomb).", _UNSUPPORTED
                    )
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, RecursionError):
        return None


def _pem(text: str) -> bool:
    stripped = text.strip()
    if not stripped.startswith("-----BEGIN "):
        return False
    blocks = list(_PEM_BLOCK_RE.finditer(stripped))
    if not blocks or stripped.count("-----BEGIN ") != len(blocks):
        raise FileRejected("invalid_file", "The PEM file has an unterminated or malformed block.")
    for block in blocks:
        body = "".join(line for line in block.group(2).splitlines() if ":" not in line)  # skip Proc-Type headers
        try:
            base64.b64decode(re.sub(r"\s+", "", body), validate=True)
        except (binascii.Error, ValueError):
            raise FileRejected("invalid_file", "A PEM block does not contain valid base64.") from None
    # Text outside the blocks (e.g. openssl's "Bag Attributes") is still checked for scripts.
    _check_scripts(_PEM_BLOCK_RE.sub("", stripped))
    return True


def check_file(*, filename: Any, data: bytes) -> CheckedFile:
    """Validate one file's name and bytes; return what it is, or raise FileRejected."""
    name = sanitise_filename(filename)
    max_bytes = settings.FILE_MAX_BYTES
    if len(data) > max_bytes:
        raise FileRejected("file_too_large", f"The file is larger than {max_bytes} bytes.", _TOO_LARGE)
    if not data:
        raise FileRejected("empty_file", "The file is empty.")
    _sniff_binary(data)
    text = _decode_text(data)
    if not text.strip():
        raise FileRejected("empty_file", "The file contains only whitespace.")
    if _pem(text):
        return CheckedFile(name, "application/x-pem-file", "pem", len(data))
    _check_scripts(text)
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if text.lstrip()[:1] in ("{", "[") or extension == "json":
        try:
            doc = _parse_json(text)
        except json.JSONDecodeError:
            if extension == "json":
                raise FileRejected("invalid_file", "The file is named .json but is not valid JSON.") from None
        else:
            return CheckedFile(name, "application/json", _check_credential_json(doc), len(data))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if lines and all(_ENV_LINE_RE.match(line) for line in lines):
        return CheckedFile(name, "text/plain", "dotenv", len(data))
    doc = _parse_yaml(text)
    if isinstance(doc, (dict, list)):
        return CheckedFile(name, "application/yaml", "yaml", len(data))
    if extension in ("yaml", "yml"):
        raise FileRejected("invalid_file", "The file is named .yaml but is not a YAML mapping or list.")
    return CheckedFile(name, "text/plain", "text", len(data))
