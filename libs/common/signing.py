"""Who signed an /exchange request: the venue's action hash and EIP-712 signer recovery.

Hyperliquid clients sign two kinds of action. An L1 action (order, cancel, leverage, ...)
is hashed (msgpack of the action, nonce, vault, expiry) and that hash is signed as the
``connectionId`` of an EIP-712 ``Agent`` struct under the fixed "Exchange" domain. A
user-signed action (transfer, withdrawal, agent approval) is itself the EIP-712 message,
under the "HyperliquidSignTransaction" domain. Either way the gateway recovers the
signer's address from (r, s, v) and decides later whether that address may act.

Nothing here does I/O. Addresses come back lowercase (``0x`` + 40 hex digits), the form
the rest of the gateway uses. The action must be the JSON object exactly as the client
sent it (key order included): re-serialising it through a model changes the hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

import msgpack
from eth_account.messages import encode_typed_data
from eth_keys.datatypes import Signature as EcdsaSignature
from eth_keys.exceptions import BadSignature
from eth_utils.crypto import keccak

Source = Literal["a", "b"]
"""Phantom-agent source: "a" is what the SDK signs for mainnet, "b" for anything else."""

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
U64_MAX: Final = 2**64 - 1
ZERO_ADDRESS: Final = "0x" + "00" * 20

L1_CHAIN_ID: Final = 1337
L1_DOMAIN_NAME: Final = "Exchange"
USER_DOMAIN_NAME: Final = "HyperliquidSignTransaction"
DOMAIN_VERSION: Final = "1"

_HEX_WORD = re.compile(r"0x[0-9a-fA-F]{1,64}")
_ADDRESS = re.compile(r"(0x)?[0-9a-fA-F]{40}")

_EIP712_DOMAIN_FIELDS: Final = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


class SignatureError(ValueError):
    """A request whose signature cannot be checked; the message says what is wrong."""


class MalformedSignature(SignatureError):
    """The ``signature`` object is not a well-formed secp256k1 (r, s, v) triple."""


class MalformedAction(SignatureError):
    """The signed payload (action, nonce, vault, expiry) cannot be hashed as the venue does."""


class UnrecoverableSignature(SignatureError):
    """Well-formed numbers that no public key produces for this digest."""


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed signature: r and s as integers, v as 27 or 28."""

    r: int
    s: int
    v: int

    @classmethod
    def parse(cls, raw: object) -> Signature:
        """Validate the wire form ``{"r": "0x..", "s": "0x..", "v": 27|28}``.

        r and s may have fewer than 64 hex digits (the SDK strips leading zeros); v may
        also be given as a recovery id 0 or 1. A high s (EIP-2) is refused, as every
        standard signer produces the low one.
        """
        if not isinstance(raw, Mapping):
            raise MalformedSignature("signature must be an object with r, s and v")
        missing = [k for k in ("r", "s", "v") if k not in raw]
        if missing:
            raise MalformedSignature(f"signature lacks {', '.join(missing)}")
        r = _hex_word(raw["r"], "r")
        s = _hex_word(raw["s"], "s")
        v = raw["v"]
        if isinstance(v, bool) or not isinstance(v, int) or v not in (0, 1, 27, 28):
            raise MalformedSignature(f"signature v must be 27 or 28, got {v!r}")
        if not 0 < r < SECP256K1_N:
            raise MalformedSignature("signature r is outside the secp256k1 group order")
        if not 0 < s < SECP256K1_N:
            raise MalformedSignature("signature s is outside the secp256k1 group order")
        if s > SECP256K1_N // 2:
            raise MalformedSignature("signature s is not canonical (EIP-2 requires the low s)")
        return cls(r=r, s=s, v=v if v >= 27 else v + 27)


def _hex_word(value: object, name: str) -> int:
    if not isinstance(value, str) or not _HEX_WORD.fullmatch(value):
        raise MalformedSignature(f"signature {name} must be 0x followed by 1 to 64 hex digits")
    return int(value, 16)


def _u64(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise MalformedAction(f"{name} must be an integer from 0 to 2^64-1, got {value!r}")
    return value


def address_bytes(address: object, name: str = "address") -> bytes:
    """The 20 bytes of a hex address (``0x`` optional, any case), as the SDK hashes it."""
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise MalformedAction(f"{name} must be 0x followed by 40 hex digits, got {address!r}")
    return bytes.fromhex(address.removeprefix("0x"))


# ---------------------------------------------------------------- L1 actions


def action_hash(
    action: dict[str, Any], nonce: int, vault_address: str | None, expires_after: int | None
) -> bytes:
    """keccak256 of the bytes the venue signs over for an L1 action.

    Layout: ``msgpack(action) || nonce (u64 BE) || 0x00`` without a vault, or
    ``|| 0x01 || vault (20 bytes)`` with one, then ``|| 0x00 || expiresAfter (u64 BE)``
    only when an expiry is given.
    """
    try:
        packed = cast(bytes, msgpack.packb(action))
    except (TypeError, ValueError, OverflowError) as exc:
        raise MalformedAction(f"action cannot be msgpack-encoded: {exc}") from exc
    data = bytearray(packed)
    data += _u64(nonce, "nonce").to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + address_bytes(vault_address, "vaultAddress")
    if expires_after is not None:
        data += b"\x00" + _u64(expires_after, "expiresAfter").to_bytes(8, "big")
    return keccak(bytes(data))


def _type_hash(encoded_type: str) -> bytes:
    return keccak(encoded_type.encode())


def _domain_separator(name: str, chain_id: int) -> bytes:
    return keccak(
        _type_hash(
            "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
        )
        + keccak(name.encode())
        + keccak(DOMAIN_VERSION.encode())
        + chain_id.to_bytes(32, "big")
        + bytes(32)  # verifyingContract: the zero address, left-padded to a word
    )


_L1_DOMAIN_SEPARATOR: Final = _domain_separator(L1_DOMAIN_NAME, L1_CHAIN_ID)
_AGENT_TYPE_HASH: Final = _type_hash("Agent(string source,bytes32 connectionId)")


def l1_digest(connection_id: bytes, source: Source) -> bytes:
    """The EIP-712 digest of ``Agent{source, connectionId}`` under the Exchange domain."""
    if len(connection_id) != 32:
        raise MalformedAction("connectionId must be 32 bytes")
    if source not in ("a", "b"):
        raise ValueError(f"source must be 'a' or 'b', got {source!r}")
    struct_hash = keccak(_AGENT_TYPE_HASH + keccak(source.encode()) + connection_id)
    return keccak(b"\x19\x01" + _L1_DOMAIN_SEPARATOR + struct_hash)


def recover_l1_signer(
    action: dict[str, Any],
    nonce: int,
    vault_address: str | None,
    expires_after: int | None,
    signature: object,
    *,
    source: Source,
) -> str:
    """The address whose key signed this L1 action (lowercase hex).

    A signature made for other bytes (another nonce, another source) still recovers,
    to some unrelated address: the caller must check that address is a known user or
    an approved agent, as the venue does ("User or API Wallet ... does not exist").
    """
    parsed = Signature.parse(signature)
    digest = l1_digest(action_hash(action, nonce, vault_address, expires_after), source)
    return recover_from_digest(digest, parsed)


def recover_from_digest(digest: bytes, signature: Signature) -> str:
    """ecrecover: the address (lowercase hex) of the key that signed a 32-byte digest."""
    try:
        ecdsa = EcdsaSignature(vrs=(signature.v - 27, signature.r, signature.s))
        public_key = ecdsa.recover_public_key_from_msg_hash(digest)
    except BadSignature as exc:
        raise UnrecoverableSignature("Unable to recover signer.") from exc
    return public_key.to_address().lower()


# ---------------------------------------------------------------- user-signed actions


@dataclass(frozen=True, slots=True)
class UserSignedType:
    """One user-signed action: its EIP-712 primary type and fields, in signing order.

    ``defaults`` fills a field the client may leave out of the posted action although
    it signed it (the SDK signs ``agentName: ""`` and then drops the key when unnamed).
    """

    primary_type: str
    fields: tuple[tuple[str, str], ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def payload_types(self) -> list[dict[str, str]]:
        return [{"name": name, "type": kind} for name, kind in self.fields]


_TRANSFER_FIELDS: Final = (
    ("hyperliquidChain", "string"),
    ("destination", "string"),
    ("amount", "string"),
    ("time", "uint64"),
)
USD_SEND: Final = UserSignedType("HyperliquidTransaction:UsdSend", _TRANSFER_FIELDS)
WITHDRAW: Final = UserSignedType("HyperliquidTransaction:Withdraw", _TRANSFER_FIELDS)
APPROVE_AGENT: Final = UserSignedType(
    "HyperliquidTransaction:ApproveAgent",
    (
        ("hyperliquidChain", "string"),
        ("agentAddress", "address"),
        ("agentName", "string"),
        ("nonce", "uint64"),
    ),
    defaults={"agentName": ""},
)

USER_SIGNED_ACTIONS: Final[Mapping[str, UserSignedType]] = {
    "usdSend": USD_SEND,
    "withdraw3": WITHDRAW,
    "approveAgent": APPROVE_AGENT,
}
"""Action ``type`` -> how it is signed, for the user-signed actions the gateway accepts."""


def signature_chain_id(action: Mapping[str, Any]) -> int:
    """``signatureChainId`` as an integer: hex with ``0x`` (as the SDK sends), else decimal."""
    raw = action.get("signatureChainId")
    if not isinstance(raw, str) or not raw:
        raise MalformedAction("user-signed action lacks signatureChainId")
    try:
        value = int(raw, 16) if raw.lower().startswith("0x") else int(raw, 10)
    except ValueError as exc:
        raise MalformedAction(f"signatureChainId {raw!r} is not a number") from exc
    if value <= 0:
        raise MalformedAction(f"signatureChainId {raw!r} must be positive")
    return value


def user_signed_digest(
    action: Mapping[str, Any], primary_type: str, payload_types: Sequence[Mapping[str, str]]
) -> bytes:
    """The EIP-712 digest of a user-signed action under the HyperliquidSignTransaction domain.

    Only the fields named in ``payload_types`` are signed; others in the action (``type``,
    ``signatureChainId``) are ignored, as in the venue's own encoding.
    """
    message: dict[str, Any] = {}
    for spec in payload_types:
        name = spec["name"]
        if name not in action:
            raise MalformedAction(f"{primary_type} action lacks field {name!r}")
        message[name] = action[name]
    typed = {
        "domain": {
            "name": USER_DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": signature_chain_id(action),
            "verifyingContract": ZERO_ADDRESS,
        },
        "types": {
            "EIP712Domain": _EIP712_DOMAIN_FIELDS,
            primary_type: [dict(spec) for spec in payload_types],
        },
        "primaryType": primary_type,
        "message": message,
    }
    try:
        signable = encode_typed_data(full_message=typed)
    except Exception as exc:  # eth-account raises many kinds for a value of the wrong type
        raise MalformedAction(f"{primary_type} action does not fit its types: {exc}") from exc
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def recover_user_signed(
    action: Mapping[str, Any],
    signature: object,
    primary_type: str,
    payload_types: Sequence[Mapping[str, str]],
    *,
    chain: str | None = None,
) -> str:
    """The address (lowercase hex) that signed a user-signed action.

    With ``chain`` ("Mainnet"/"Testnet"), an action whose ``hyperliquidChain`` names
    another chain is refused, so a testnet signature cannot be replayed here.
    """
    parsed = Signature.parse(signature)
    if chain is not None and action.get("hyperliquidChain") != chain:
        raise MalformedAction(
            f"action is signed for hyperliquidChain {action.get('hyperliquidChain')!r}, "
            f"this venue is {chain!r}"
        )
    return recover_from_digest(user_signed_digest(action, primary_type, payload_types), parsed)


def recover_user_action(
    action: Mapping[str, Any], signature: object, *, chain: str | None = None
) -> str:
    """Recover the signer of a known user-signed action, chosen by its ``type``."""
    kind = action.get("type")
    spec = USER_SIGNED_ACTIONS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise MalformedAction(f"{kind!r} is not a user-signed action type")
    filled = {**spec.defaults, **action}
    return recover_user_signed(
        filled, signature, spec.primary_type, spec.payload_types, chain=chain
    )
