"""Signer recovery: the venue's action hash and EIP-712 digests, held to published vectors.

Known answers come from the official SDK's own tests (tests/signing_test.py in
hyperliquid-python-sdk): its fixed key, its actions and the r/s/v it expects. The SDK
prints r and s without leading zeros, so some have fewer than 64 hex digits.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.signing import (
    APPROVE_AGENT,
    SECP256K1_N,
    USD_SEND,
    WITHDRAW,
    MalformedAction,
    MalformedSignature,
    Signature,
    Source,
    UnrecoverableSignature,
    action_hash,
    l1_digest,
    recover_l1_signer,
    recover_user_action,
    recover_user_signed,
    user_signed_digest,
)

FAST = settings(max_examples=60, deadline=None)

SDK_KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"
SDK_ADDRESS = "0x14791697260e4c9a71f18484c9f997b308e59325"
WALLET = Account.from_key(SDK_KEY)
OTHER = Account.from_key("0x" + "42" * 32)
VAULT = "0x1719884eb866cb12b2287399b15f7db5e7d775ea"
DESTINATION = "0x5e9ee1089755c3435139848e47e6635505d5a13a"

DUMMY = {"type": "dummy", "num": 100_000_000_000}  # the SDK's float_to_int_for_hashing(1000)


def order(t: dict[str, Any], cloid: str | None = None) -> dict[str, Any]:
    wire: dict[str, Any] = {"a": 1, "b": True, "p": "100", "s": "100", "r": False, "t": t}
    if cloid:
        wire["c"] = cloid
    return {"type": "order", "orders": [wire], "grouping": "na"}


GTC = {"limit": {"tif": "Gtc"}}
STOP = {"trigger": {"isMarket": True, "triggerPx": "103", "tpsl": "sl"}}


def sig(r: str, s: str, v: int) -> dict[str, Any]:
    return {"r": r, "s": s, "v": v}


# ------------------------------------------------------------------ an independent msgpack


def mp(value: Any) -> bytes:
    """Just enough MessagePack, written from the spec, to check the library byte for byte."""
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        if 0 <= value < 0x80:
            return bytes([value])
        if value >= 0:
            for tag, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
                if value < 1 << (8 * size):
                    return bytes([tag]) + value.to_bytes(size, "big")
        if value >= -32:
            return (value & 0xFF).to_bytes(1, "big")
        raise AssertionError("wider negatives are not needed here")
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) < 32:
            return bytes([0xA0 | len(raw)]) + raw
        return b"\xd9" + bytes([len(raw)]) + raw
    if isinstance(value, list):
        assert len(value) < 16
        return bytes([0x90 | len(value)]) + b"".join(mp(v) for v in value)
    if isinstance(value, dict):
        assert len(value) < 16
        return bytes([0x80 | len(value)]) + b"".join(mp(k) + mp(v) for k, v in value.items())
    raise AssertionError(f"unsupported {type(value)}")


def typed_l1(connection_id: bytes, source: str) -> dict[str, Any]:
    """The L1 typed data, built the way an SDK user would, for eth-account to encode."""
    return {
        "domain": {
            "chainId": 1337,
            "name": "Exchange",
            "verifyingContract": "0x0000000000000000000000000000000000000000",
            "version": "1",
        },
        "types": {
            "Agent": [
                {"name": "source", "type": "string"},
                {"name": "connectionId", "type": "bytes32"},
            ],
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
        },
        "primaryType": "Agent",
        "message": {"source": source, "connectionId": connection_id},
    }


def sign_l1(
    account: Any,
    action: dict[str, Any],
    nonce: int,
    source: str,
    vault: str | None = None,
    expires_after: int | None = None,
) -> dict[str, Any]:
    """Sign as a client does: hash, phantom agent, eth-account typed-data signing."""
    connection_id = action_hash(action, nonce, vault, expires_after)
    signed = account.sign_message(encode_typed_data(full_message=typed_l1(connection_id, source)))
    return sig(hex(signed.r), hex(signed.s), signed.v)


def sign_user(account: Any, action: dict[str, Any], spec: Any) -> dict[str, Any]:
    typed = {
        "domain": {
            "name": "HyperliquidSignTransaction",
            "version": "1",
            "chainId": int(action["signatureChainId"], 16),
            "verifyingContract": "0x0000000000000000000000000000000000000000",
        },
        "types": {
            spec.primary_type: spec.payload_types,
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
        },
        "primaryType": spec.primary_type,
        "message": action,
    }
    signed = account.sign_message(encode_typed_data(full_message=typed))
    return sig(hex(signed.r), hex(signed.s), signed.v)


# ------------------------------------------------------------------ the action hash


def test_production_order_hash_matches_the_sdk_and_hand_built_bytes() -> None:
    """The SDK's test_phantom_agent_creation_matches_production vector."""
    action = {
        "type": "order",
        "orders": [
            {
                "a": 4,
                "b": True,
                "p": "1670.1",
                "s": "0.0147",
                "r": False,
                "t": {"limit": {"tif": "Ioc"}},
            }
        ],
        "grouping": "na",
    }
    nonce = 1677777606040
    expected = "0fcbeda5ae3c4950a548021552a4fea2226858c4453571bf3f24ba017eac2908"
    assert action_hash(action, nonce, None, None).hex() == expected
    manual = mp(action) + nonce.to_bytes(8, "big") + b"\x00"
    assert keccak(manual).hex() == expected


def test_vault_and_expiry_bytes_follow_the_action_and_nonce() -> None:
    nonce, expires = 1_700_000_000_000, 1_700_000_060_000
    base = mp(DUMMY) + nonce.to_bytes(8, "big")
    vault_bytes = bytes.fromhex(VAULT[2:])
    assert action_hash(DUMMY, nonce, VAULT, None) == keccak(base + b"\x01" + vault_bytes)
    assert action_hash(DUMMY, nonce, None, expires) == keccak(
        base + b"\x00" + b"\x00" + expires.to_bytes(8, "big")
    )
    assert action_hash(DUMMY, nonce, VAULT, expires) == keccak(
        base + b"\x01" + vault_bytes + b"\x00" + expires.to_bytes(8, "big")
    )
    # the vault may come in any case, with or without 0x, as the SDK's address_to_bytes takes it
    assert action_hash(DUMMY, nonce, VAULT.upper().replace("0X", ""), None) == action_hash(
        DUMMY, nonce, VAULT, None
    )


def test_key_order_and_value_types_change_the_hash() -> None:
    swapped = {"num": 100_000_000_000, "type": "dummy"}
    as_string = {"type": "dummy", "num": "100000000000"}
    hashes = {action_hash(a, 0, None, None) for a in (DUMMY, swapped, as_string)}
    assert len(hashes) == 3


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.integers(0, 2**64 - 1), st.booleans(), st.none(), st.text(max_size=40)),
        max_size=10,
    ),
    st.integers(0, 2**64 - 1),
)
@FAST
def test_hash_equals_keccak_of_the_spec_layout(action: dict[str, Any], nonce: int) -> None:
    expected = keccak(mp(action) + nonce.to_bytes(8, "big") + b"\x00")
    assert action_hash(action, nonce, None, None) == expected


@pytest.mark.parametrize(
    ("nonce", "vault", "expires"),
    [
        (-1, None, None),
        (2**64, None, None),
        (True, None, None),
        (0, "0x1234", None),
        (0, "0x" + "g" * 40, None),
        (0, 42, None),
        (0, None, -5),
        (0, None, 2**64),
    ],
)
def test_unhashable_envelopes_are_malformed_actions(nonce: Any, vault: Any, expires: Any) -> None:
    with pytest.raises(MalformedAction):
        action_hash(DUMMY, nonce, vault, expires)


@pytest.mark.parametrize(
    "action",
    [{"type": "x", "n": 2**64}, {"type": "x", "s": {1, 2}}, {"type": "x", "o": object()}],
)
def test_actions_msgpack_cannot_encode_are_malformed(action: dict[str, Any]) -> None:
    with pytest.raises(MalformedAction, match="msgpack"):
        action_hash(action, 0, None, None)


# ------------------------------------------------------------------ the L1 digest


@given(st.binary(min_size=32, max_size=32), st.sampled_from(["a", "b"]))
@FAST
def test_l1_digest_equals_eth_accounts_typed_data_encoding(
    connection_id: bytes, source: Source
) -> None:
    signable = encode_typed_data(full_message=typed_l1(connection_id, source))
    expected = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert l1_digest(connection_id, source) == expected


def test_l1_digest_refuses_a_short_connection_id_and_an_unknown_source() -> None:
    with pytest.raises(MalformedAction):
        l1_digest(b"\x00" * 31, "a")
    with pytest.raises(ValueError):
        l1_digest(b"\x00" * 32, "c")  # type: ignore[arg-type]


# ------------------------------------------------------------------ published signatures

SDK_L1_VECTORS = [
    # (action, vault, source, r, s, v) with nonce 0, from the SDK's signing tests
    (DUMMY, None, "a", "0x53749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298",
     "0x755c40ba9bf05223521753995abb2f73ab3229be8ec921f350cb447e384d8ed8", 27),
    (DUMMY, None, "b", "0x542af61ef1f429707e3c76c5293c80d01f74ef853e34b76efffcb57e574f9510",
     "0x17b8b32f086e8cdede991f1e2c529f5dd5297cbe8128500e00cbaf766204a613", 28),
    (DUMMY, VAULT, "a", "0x3c548db75e479f8012acf3000ca3a6b05606bc2ec0c29c50c515066a326239",
     "0x4d402be7396ce74fbba3795769cda45aec00dc3125a984f2a9f23177b190da2c", 28),
    (DUMMY, VAULT, "b", "0xe281d2fb5c6e25ca01601f878e4d69c965bb598b88fac58e475dd1f5e56c362b",
     "0x7ddad27e9a238d045c035bc606349d075d5c5cd00a6cd1da23ab5c39d4ef0f60", 27),
    (order(GTC), None, "a", "0xd65369825a9df5d80099e513cce430311d7d26ddf477f5b3a33d2806b100d78e",
     "0x2b54116ff64054968aa237c20ca9ff68000f977c93289157748a3162b6ea940e", 28),
    (order(GTC), None, "b", "0x82b2ba28e76b3d761093aaded1b1cdad4960b3af30212b343fb2e6cdfa4e3d54",
     "0x6b53878fc99d26047f4d7e8c90eb98955a109f44209163f52d8dc4278cbbd9f5", 27),
    (order(GTC, "0x00000000000000000000000000000001"), None, "a",
     "0x41ae18e8239a56cacbc5dad94d45d0b747e5da11ad564077fcac71277a946e3",
     "0x3c61f667e747404fe7eea8f90ab0e76cc12ce60270438b2058324681a00116da", 27),
    (order(GTC, "0x00000000000000000000000000000001"), None, "b",
     "0xeba0664bed2676fc4e5a743bf89e5c7501aa6d870bdb9446e122c9466c5cd16d",
     "0x7f3e74825c9114bc59086f1eebea2928c190fdfbfde144827cb02b85bbe90988", 28),
    (order(STOP), None, "a", "0x98343f2b5ae8e26bb2587daad3863bc70d8792b09af1841b6fdd530a2065a3f9",
     "0x6b5bb6bb0633b710aa22b721dd9dee6d083646a5f8e581a20b545be6c1feb405", 27),
    (order(STOP), None, "b", "0x971c554d917c44e0e1b6cc45d8f9404f32172a9d3b3566262347d0302896a2e4",
     "0x206257b104788f80450f8e786c329daa589aa0b32ba96948201ae556d5637eac", 28),
    ({"type": "createSubAccount", "name": "example"}, None, "a",
     "0x51096fe3239421d16b671e192f574ae24ae14329099b6db28e479b86cdd6caa7",
     "0xb71f7d293af92d3772572afb8b102d167a7cef7473388286bc01f52a5c5b423", 27),
    ({"type": "createSubAccount", "name": "example"}, None, "b",
     "0xa699e3ed5c2b89628c746d3298b5dc1cca604694c2c855da8bb8250ec8014a5b",
     "0x53f1b8153a301c72ecc655b1c315d64e1dcea3ee58921fd7507e35818fcc1584", 28),
    ({"type": "scheduleCancel"}, None, "a",
     "0x6cdfb286702f5917e76cd9b3b8bf678fcc49aec194c02a73e6d4f16891195df9",
     "0x6557ac307fa05d25b8d61f21fb8a938e703b3d9bf575f6717ba21ec61261b2a0", 27),
    ({"type": "scheduleCancel", "time": 123456789}, None, "a",
     "0x609cb20c737945d070716dcc696ba030e9976fcf5edad87afa7d877493109d55",
     "0x16c685d63b5c7a04512d73f183b3d7a00da5406ff1f8aad33f8ae2163bab758b", 28),
]  # fmt: skip


@pytest.mark.parametrize(("action", "vault", "source", "r", "s", "v"), SDK_L1_VECTORS)
def test_sdk_l1_signatures_recover_the_sdk_test_key(
    action: dict[str, Any], vault: str | None, source: Source, r: str, s: str, v: int
) -> None:
    signer = recover_l1_signer(action, 0, vault, None, sig(r, s, v), source=source)
    assert signer == SDK_ADDRESS


@pytest.mark.parametrize(("action", "vault", "source", "r", "s", "v"), SDK_L1_VECTORS)
def test_eth_account_signing_our_digest_reproduces_the_sdk_signature(
    action: dict[str, Any], vault: str | None, source: Source, r: str, s: str, v: int
) -> None:
    """RFC 6979 signing is deterministic: same digest, same key -> the SDK's exact r, s, v."""
    signed = WALLET.unsafe_sign_hash(l1_digest(action_hash(action, 0, vault, None), source))
    assert (signed.r, signed.s, signed.v) == (int(r, 16), int(s, 16), v)


def test_a_signature_for_the_other_source_recovers_someone_else() -> None:
    """The SDK signs "b" off mainnet; checking it as "a" finds an unrelated address."""
    testnet = SDK_L1_VECTORS[1]
    signer = recover_l1_signer(DUMMY, 0, None, None, sig(*testnet[3:]), source="a")
    assert signer != SDK_ADDRESS


SDK_USER_VECTORS = [
    (USD_SEND, "usdSend", "0x637b37dd731507cdd24f46532ca8ba6eec616952c56218baeff04144e4a77073",
     "0x11a6a24900e6e314136d2592e2f8d502cd89b7c15b198e1bee043c9589f9fad7", 27),
    (WITHDRAW, "withdraw3", "0x8363524c799e90ce9bc41022f7c39b4e9bdba786e5f9c72b20e43e1462c37cf9",
     "0x58b1411a775938b83e29182e8ef74975f9054c8e97ebf5ec2dc8d51bfc893881", 28),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "kind", "r", "s", "v"), SDK_USER_VECTORS)
def test_sdk_transfer_signatures_recover_the_sdk_test_key(
    spec: Any, kind: str, r: str, s: str, v: int
) -> None:
    """The SDK signs these on testnet with signatureChainId 0x66eee (421614)."""
    action = {
        "destination": DESTINATION,
        "amount": "1",
        "time": 1687816341423,
        "type": kind,
        "signatureChainId": "0x66eee",
        "hyperliquidChain": "Testnet",
    }
    signature = sig(r, s, v)
    assert recover_user_signed(action, signature, spec.primary_type, spec.payload_types) == (
        SDK_ADDRESS
    )
    assert recover_user_action(action, signature, chain="Testnet") == SDK_ADDRESS
    signed = WALLET.unsafe_sign_hash(
        user_signed_digest(action, spec.primary_type, spec.payload_types)
    )
    assert (signed.r, signed.s, signed.v) == (int(r, 16), int(s, 16), v)


# ------------------------------------------------------------------ round trips

ORDER_WIRES = st.fixed_dictionaries(
    {
        "a": st.integers(0, 200),
        "b": st.booleans(),
        "p": st.decimals(min_value=0, max_value=10**6, places=2).map(
            lambda d: f"{d.normalize():f}"
        ),
        "s": st.decimals(min_value=0, max_value=10**4, places=4).map(
            lambda d: f"{d.normalize():f}"
        ),
        "r": st.booleans(),
        "t": st.sampled_from([{"limit": {"tif": "Gtc"}}, {"limit": {"tif": "Alo"}}, STOP]),
    }
)


@given(
    st.lists(ORDER_WIRES, min_size=1, max_size=5),
    st.integers(1_600_000_000_000, 1_900_000_000_000),
    st.sampled_from(["a", "b"]),
    st.sampled_from([None, VAULT]),
    st.sampled_from([None, 1_900_000_000_000]),
)
@FAST
def test_orders_signed_by_eth_account_recover_their_signer(
    orders: list[dict[str, Any]],
    nonce: int,
    source: Source,
    vault: str | None,
    expires: int | None,
) -> None:
    action = {"type": "order", "orders": orders, "grouping": "na"}
    signature = sign_l1(OTHER, action, nonce, source, vault, expires)
    expected = OTHER.address.lower()
    assert recover_l1_signer(action, nonce, vault, expires, signature, source=source) == expected
    # any change to what was signed recovers a different address
    assert recover_l1_signer(action, nonce + 1, vault, expires, signature, source=source) != (
        expected
    )
    other_source: Source = "b" if source == "a" else "a"
    assert recover_l1_signer(action, nonce, vault, expires, signature, source=other_source) != (
        expected
    )


def test_a_changed_price_recovers_a_different_signer() -> None:
    action = order(GTC)
    signature = sign_l1(OTHER, action, 1_700_000_000_000, "a")
    tampered = order(GTC)
    tampered["orders"][0]["p"] = "100.5"
    assert recover_l1_signer(action, 1_700_000_000_000, None, None, signature, source="a") == (
        OTHER.address.lower()
    )
    assert recover_l1_signer(tampered, 1_700_000_000_000, None, None, signature, source="a") != (
        OTHER.address.lower()
    )


def test_approve_agent_without_a_name_recovers_as_the_sdk_posts_it() -> None:
    """The SDK signs agentName "" and then drops the key from the posted action."""
    agent = Account.from_key("0x" + "07" * 32)
    signed_form = {
        "type": "approveAgent",
        "agentAddress": agent.address,  # checksummed, as the SDK sends it
        "agentName": "",
        "nonce": 1_700_000_000_000,
        "signatureChainId": "0x66eee",
        "hyperliquidChain": "Mainnet",
    }
    signature = sign_user(WALLET, signed_form, APPROVE_AGENT)
    posted = {k: v for k, v in signed_form.items() if k != "agentName"}
    assert recover_user_action(posted, signature, chain="Mainnet") == SDK_ADDRESS
    named = {**signed_form, "agentName": "bot"}
    assert recover_user_action(named, sign_user(WALLET, named, APPROVE_AGENT)) == SDK_ADDRESS
    with pytest.raises(MalformedAction, match="Testnet"):
        recover_user_action(posted, signature, chain="Testnet")


def test_signature_chain_id_may_be_decimal_and_changes_the_digest() -> None:
    action = {
        "type": "usdSend",
        "destination": DESTINATION,
        "amount": "12.5",
        "time": 1_700_000_000_000,
        "signatureChainId": "0xa4b1",
        "hyperliquidChain": "Mainnet",
    }
    as_decimal = {**action, "signatureChainId": "42161"}
    assert user_signed_digest(action, USD_SEND.primary_type, USD_SEND.payload_types) == (
        user_signed_digest(as_decimal, USD_SEND.primary_type, USD_SEND.payload_types)
    )
    other_chain = {**action, "signatureChainId": "0x66eee"}
    assert user_signed_digest(action, USD_SEND.primary_type, USD_SEND.payload_types) != (
        user_signed_digest(other_chain, USD_SEND.primary_type, USD_SEND.payload_types)
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"signatureChainId": None}, "signatureChainId"),
        ({"signatureChainId": "0xzz"}, "not a number"),
        ({"signatureChainId": "0x0"}, "positive"),
        ({"time": "soon"}, "does not fit"),
        ({"type": "vaultTransfer"}, "not a user-signed action"),
    ],
)
def test_user_signed_actions_that_cannot_be_encoded_are_malformed(
    change: dict[str, Any], match: str
) -> None:
    action: dict[str, Any] = {
        "type": "usdSend",
        "destination": DESTINATION,
        "amount": "1",
        "time": 1,
        "signatureChainId": "0x66eee",
        "hyperliquidChain": "Mainnet",
        **change,
    }
    action = {k: v for k, v in action.items() if v is not None}
    good = sig("0x" + "11" * 32, "0x" + "22" * 32, 27)
    with pytest.raises(MalformedAction, match=match):
        recover_user_action(action, good)


def test_an_agent_address_that_is_no_address_is_malformed() -> None:
    action = {
        "type": "approveAgent",
        "agentAddress": "0x1234",
        "nonce": 1,
        "signatureChainId": "0x66eee",
        "hyperliquidChain": "Mainnet",
    }
    with pytest.raises(MalformedAction, match="does not fit"):
        recover_user_action(action, sig(GOOD_R, GOOD_S, 27))


def test_a_user_signed_action_missing_a_signed_field_is_malformed() -> None:
    action = {"type": "withdraw3", "amount": "1", "time": 1, "signatureChainId": "0x1"}
    with pytest.raises(MalformedAction, match="lacks field 'hyperliquidChain'"):
        recover_user_action(action, sig("0x1", "0x1", 27))


# ------------------------------------------------------------------ malformed signatures

GOOD_R = "0x53749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298"
GOOD_S = "0x755c40ba9bf05223521753995abb2f73ab3229be8ec921f350cb447e384d8ed8"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("0xdeadbeef", "object with r, s and v"),
        ({"r": GOOD_R, "s": GOOD_S}, "lacks v"),
        ({"r": GOOD_R}, "lacks s, v"),
        ({"r": GOOD_R, "s": GOOD_S, "v": 29}, "v must be 27 or 28"),
        ({"r": GOOD_R, "s": GOOD_S, "v": "27"}, "v must be 27 or 28"),
        ({"r": GOOD_R, "s": GOOD_S, "v": True}, "v must be 27 or 28"),
        ({"r": GOOD_R[2:], "s": GOOD_S, "v": 27}, "r must be 0x"),
        ({"r": "0x" + "1" * 65, "s": GOOD_S, "v": 27}, "r must be 0x"),
        ({"r": 123, "s": GOOD_S, "v": 27}, "r must be 0x"),
        ({"r": GOOD_R, "s": "0xnothex", "v": 27}, "s must be 0x"),
        ({"r": "0x0", "s": GOOD_S, "v": 27}, "r is outside"),
        ({"r": hex(SECP256K1_N), "s": GOOD_S, "v": 27}, "r is outside"),
        ({"r": GOOD_R, "s": "0x0", "v": 27}, "s is outside"),
        ({"r": GOOD_R, "s": hex(SECP256K1_N - int(GOOD_S, 16)), "v": 28}, "EIP-2"),
    ],
)
def test_malformed_signatures_are_refused_with_what_is_wrong(raw: Any, match: str) -> None:
    with pytest.raises(MalformedSignature, match=match):
        recover_l1_signer(DUMMY, 0, None, None, raw, source="a")


def test_recovery_id_0_and_1_mean_27_and_28() -> None:
    assert Signature.parse(sig(GOOD_R, GOOD_S, 0)) == Signature.parse(sig(GOOD_R, GOOD_S, 27))
    assert recover_l1_signer(DUMMY, 0, None, None, sig(GOOD_R, GOOD_S, 0), source="a") == (
        SDK_ADDRESS
    )


def test_an_r_that_is_no_curve_point_cannot_be_recovered() -> None:
    p = 2**256 - 2**32 - 977
    r = next(x for x in range(1, 100) if pow(x**3 + 7, (p - 1) // 2, p) != 1)
    with pytest.raises(UnrecoverableSignature, match="Unable to recover signer"):
        recover_l1_signer(DUMMY, 0, None, None, sig(hex(r), GOOD_S, 27), source="a")
