"""The exception tree of ollama-oci.

Every error the library raises on purpose derives from :class:`OllamaOCIError`.
Each carries a one-line message that names the problem and, where there is one,
the fix, and an ``exit_code`` that the command-line interface returns.  Errors
also subclass the builtin a caller would expect (``ValueError`` for bad input,
``LookupError`` for a missing thing, ``OSError`` for storage failures), so
``except ValueError`` keeps working in scripts that never heard of this module.

Exit codes (also in docs/cli.md):

==== ===========================================================
code meaning
==== ===========================================================
0    success
1    unexpected internal error (a bug: please report it)
2    usage error (bad command line)
3    bad input: GGUF, Modelfile, model name, digest, parameter
4    not found: model, blob or file
5    integrity failure: a digest or size does not match
6    I/O or storage failure (disk full, permissions, ...)
7    registry or network failure (after retries)
8    authentication or authorization refused by a registry
130  interrupted (Ctrl-C)
==== ===========================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_NOT_FOUND = 4
EXIT_INTEGRITY = 5
EXIT_IO = 6
EXIT_REGISTRY = 7
EXIT_AUTH = 8
EXIT_INTERRUPTED = 130


class OllamaOCIError(Exception):
    """Base of every error raised on purpose by ollama-oci."""

    exit_code = EXIT_INTERNAL


class InvalidInput(OllamaOCIError, ValueError):
    """Input that cannot be used as given (a file, a name, a value)."""

    exit_code = EXIT_INPUT


class GGUFError(InvalidInput):
    """A file is not a readable GGUF file.  ``offset`` is the byte where reading failed."""

    def __init__(self, message: str, offset: int | None = None, path: str | None = None):
        self.offset = offset
        self.path = path
        self.reason = message
        where = []
        if path:
            where.append(str(path))
        if offset is not None:
            where.append(f"byte {offset}")
        prefix = f"{': '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{message}")


class ModelfileError(InvalidInput):
    """A Modelfile that ollama's parser would refuse, with ollama's wording."""

    def __init__(self, message: str, line: int | None = None, path: str | None = None):
        self.line = line
        self.path = path
        self.bare = message
        if path is not None:
            super().__init__(f"{path}:{line}: {message}" if line is not None else f"{path}: {message}")
        else:
            super().__init__(f"(line {line}): {message}" if line is not None else message)


class InvalidName(InvalidInput):
    """A model name or reference outside ollama's name grammar."""


class InvalidDigest(InvalidInput):
    """A digest that is not ``sha256:`` followed by 64 lowercase hex characters."""


class InvalidParameter(InvalidInput):
    """A PARAMETER that ollama would refuse (unknown name or badly typed value)."""


class NotFound(OllamaOCIError, LookupError):
    """A model, blob or file that is not there."""

    exit_code = EXIT_NOT_FOUND


class VerificationError(OllamaOCIError):
    """Content whose digest or size is not what it claims to be."""

    exit_code = EXIT_INTEGRITY

    def __init__(self, message: str, *, expected: str | None = None, actual: str | None = None):
        self.expected = expected
        self.actual = actual
        super().__init__(message)


class StoreError(OllamaOCIError, OSError):
    """A store could not be read or written (permissions, disk full, a broken layout)."""

    exit_code = EXIT_IO


class Unsupported(InvalidInput):
    """Input that is valid but asks for something ollama-oci does not do (yet)."""


class RegistryError(OllamaOCIError):
    """A registry answered with an error, or could not be reached after retries.

    ``status`` is the HTTP status (None for a connection failure), ``codes`` the
    OCI error codes of the body, ``url`` the request URL without its query
    string (presigned URLs carry secrets there).
    """

    exit_code = EXIT_REGISTRY

    def __init__(self, message: str, *, status: int | None = None, codes: tuple = (), url: str | None = None,
                 temporary: bool = False):
        self.status = status
        self.codes = tuple(codes)
        self.url = url
        self.temporary = temporary
        super().__init__(message)


class AuthError(RegistryError):
    """The registry refused our credentials (or we have none it accepts)."""

    exit_code = EXIT_AUTH


class Cancelled(OllamaOCIError):
    """The work was interrupted (Ctrl-C, or a caller's cancel); what was done stays resumable."""

    exit_code = EXIT_INTERRUPTED


def printable(text: str, limit: int = 200) -> str:
    """Text from an untrusted source (a server, a GGUF, a bundle) made safe to print on a terminal:
    control characters (line breaks, ESC, C1 controls, bidi overrides) shown as escapes, so it
    cannot forge output lines or drive the terminal; cut to ``limit`` characters."""
    out = []
    for ch in text[:limit]:
        o = ord(ch)
        if ch == "\t" or (0x20 <= o < 0x7F) or (o >= 0xA0 and not 0x202A <= o <= 0x202E
                                                 and not 0x2066 <= o <= 0x2069 and o not in (0x2028, 0x2029)):
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        else:
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
    return "".join(out) + ("…" if len(text) > limit else "")
