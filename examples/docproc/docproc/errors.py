"""The exception tree of the docproc case study.

The case study is a separate package (docs/decisions.md, D14), so it has its own
root rather than borrowing the mesh's :class:`eblocks.errors.EblocksError`.
Branches are named by where the failure happens, and each also inherits the
builtin a caller would naturally catch::

    DocprocError
    ├── KeyStoreError (OSError)            the key store directory cannot be used
    │   └── UnknownKeyError (LookupError)  no key with that key id in the store
    ├── EnvelopeError (ValueError)         an envelope cannot be sealed or opened
    │   ├── MalformedEnvelopeError         a field is missing or not of its type/size
    │   ├── SignatureError                 the signature does not match (tampered, or wrong aad)
    │   ├── UnwrapError                    RSA-OAEP unwrapping of the data key failed
    │   └── DecryptError                   AES-GCM authentication of the ciphertext failed
    └── StoreError (RuntimeError)          the document store cannot be opened or used
        └── RecordError (ValueError)       a record is invalid (names the field)

An envelope whose key id is not in the store raises :class:`UnknownKeyError`,
which is also an :class:`EnvelopeError` so one ``except EnvelopeError`` covers
every reason an envelope does not open.
"""

from __future__ import annotations

__all__ = [
    "DecryptError",
    "DocprocError",
    "EnvelopeError",
    "FrameError",
    "KeyStoreError",
    "MalformedEnvelopeError",
    "RecordError",
    "SignatureError",
    "StoreError",
    "UnknownKeyError",
    "UnwrapError",
]


class DocprocError(Exception):
    """Root of every error raised by the docproc package."""


class KeyStoreError(DocprocError, OSError):
    """The key store directory cannot be created, locked, read or written."""


class EnvelopeError(DocprocError, ValueError):
    """An envelope cannot be sealed or opened; the subclass says which check failed."""


class UnknownKeyError(KeyStoreError, EnvelopeError, LookupError):
    """No key with the given key id (or for the given level) is in this key store."""


class MalformedEnvelopeError(EnvelopeError):
    """A field of the envelope is missing, of the wrong type, or of the wrong size."""


class SignatureError(EnvelopeError):
    """The Ed25519 signature does not cover these fields: tampered with, or the wrong aad."""


class UnwrapError(EnvelopeError):
    """The wrapped data key does not unwrap under the envelope's RSA key."""


class DecryptError(EnvelopeError):
    """The AES-GCM tag does not authenticate the ciphertext."""


class StoreError(DocprocError, RuntimeError):
    """The document store cannot be opened, migrated or queried."""


class RecordError(StoreError, ValueError):
    """A record is invalid; the message names the field."""


class FrameError(DocprocError, ValueError):
    """A batch reply is not a well-formed frame (`docproc.frames`); the message says where."""
