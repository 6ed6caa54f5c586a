"""Deposit key derivation from an xpub, checked against the BIP32 test vectors (public-only steps)."""

from __future__ import annotations

import pytest

from exchange_framework.chains.hd import HARDENED, HdError, account_path, derive_public_key, derive_xpub, validate_xpub

# BIP32 test vectors 1 and 2: (parent xpub, non-hardened path, expected child xpub). Every step below a hardened
# parent is a public derivation, which is all an adapter may do.
VECTORS = [
    (  # vector 2: m -> m/0
        "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB",
        (0,),
        "xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH",
    ),
    (  # vector 2: m/0/2147483647H -> m/0/2147483647H/1
        "xpub6ASAVgeehLbnwdqV6UKMHVzgqAG8Gr6riv3Fxxpj8ksbH9ebxaEyBLZ85ySDhKiLDBrQSARLq1uNRts8RuJiHjaDMBU4Zn9h8LZNnBC5y4a",
        (1,),
        "xpub6DF8uhdarytz3FWdA8TvFSvvAh8dP3283MY7p2V4SeE2wyWmG5mg5EwVvmdMVCQcoNJxGoWaU9DCWh89LojfZ537wTfunKau47EL2dhHKon",
    ),
    (  # vector 2: m/0/2147483647H/1/2147483646H -> .../2
        "xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL",
        (2,),
        "xpub6FnCn6nSzZAw5Tw7cgR9bi15UV96gLZhjDstkXXxvCLsUXBGXPdSnLFbdpq8p9HmGsApME5hQTZ3emM2rnY5agb9rXpVGyy3bdW6EEgAtqt",
    ),
    (  # vector 1: m/0H/1/2H/2 -> m/0H/1/2H/2/1000000000
        "xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV",
        (1000000000,),
        "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy",
    ),
    (  # vector 2: m -> m/0 -> ... two steps at once is the same as one at a time
        "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB",
        (),
        "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB",
    ),
]
XPUB = VECTORS[0][0]


@pytest.mark.parametrize(("parent", "path", "child"), VECTORS)
def test_public_derivation_matches_bip32_vectors(parent: str, path: tuple[int, ...], child: str) -> None:
    assert derive_xpub(parent, path) == child


def test_derived_public_key_is_the_child_xpubs_key() -> None:
    key = derive_public_key(XPUB, (0,))
    assert len(key) == 33 and key[0] in (2, 3)
    assert key == derive_public_key(VECTORS[0][2], ())


def test_account_paths_are_distinct_and_stable() -> None:
    keys = {derive_public_key(XPUB, account_path(a)) for a in range(1, 40)}
    assert len(keys) == 39
    assert derive_public_key(XPUB, account_path(7)) == derive_public_key(XPUB, (0, 7))


@pytest.mark.parametrize("account", [0, -1, HARDENED, True, "5"])
def test_account_outside_non_hardened_range_is_refused(account: object) -> None:
    with pytest.raises(HdError, match="account"):
        account_path(account)  # type: ignore[arg-type]


def test_hardened_index_is_refused() -> None:
    with pytest.raises(HdError, match="hardened"):
        derive_public_key(XPUB, (HARDENED,))


@pytest.mark.parametrize(
    "bad",
    [
        "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi",
        XPUB[:-1] + ("C" if XPUB[-1] != "C" else "D"),  # checksum broken
        "xpub123",
        "",
    ],
)
def test_bad_extended_keys_are_refused_with_a_clear_error(bad: str) -> None:
    with pytest.raises(HdError, match="extended"):
        validate_xpub(bad)
