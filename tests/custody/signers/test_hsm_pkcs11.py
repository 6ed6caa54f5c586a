"""The PKCS#11 HSM signer (plugins/hsm_pkcs11) on a real SoftHSM2 token: conformance, key boundary, fail-closed."""

from __future__ import annotations

import hashlib
import importlib.metadata
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pkcs11
import pytest
from exchange_hsm_pkcs11 import Pkcs11Signer
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from exchange_framework.config import load_config
from exchange_framework.custody.conformance import CHECKS, Check, run_check
from exchange_framework.custody.signing import hot_wallet_signer, verify_signature
from exchange_framework.interfaces import (
    CustodySigner,
    KeyExistsError,
    KeyScheme,
    SignatureInvalidError,
    SigningError,
    SigningRefusedError,
    SigningRequest,
    UnknownKeyError,
)
from exchange_framework.plugins import make_plugin_manager
from tests.custody.signers.conftest import SoftHsmToken

DIGEST = hashlib.sha256(b"withdraw 2 ETH to 0xabc").digest()


@pytest.fixture
def hsm(softhsm_token: SoftHsmToken) -> Iterator[Pkcs11Signer]:
    signer = Pkcs11Signer(softhsm_token.module, softhsm_token.label, pin_env=softhsm_token.pin_env)
    yield signer
    signer.close()


@pytest.fixture
def token_session(hsm: Pkcs11Signer) -> Iterator[pkcs11.Session]:
    """The token session, to look at (and plant) objects behind the signer's back.

    PKCS#11 logs in the whole process, not one session, so this is the signer's own logged-in session.
    """
    with hsm._session_for("a test") as session:
        yield session


def _key_id(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
@pytest.mark.parametrize("scheme", sorted(KeyScheme))
def test_the_hsm_signer_passes_the_conformance_kit(hsm: Pkcs11Signer, check: Check, scheme: KeyScheme) -> None:
    assert isinstance(hsm, CustodySigner)
    run_check(check, hsm, scheme, key_prefix="hsm")


@pytest.mark.parametrize("scheme", sorted(KeyScheme))
def test_the_private_value_cannot_be_read_or_made_extractable(
    hsm: Pkcs11Signer, token_session: pkcs11.Session, scheme: KeyScheme
) -> None:
    key_id = _key_id("boundary")
    hsm.create_key(key_id, scheme)
    private = token_session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_id)
    with pytest.raises(pkcs11.AttributeSensitive):
        private[Attribute.VALUE]
    assert private[Attribute.SENSITIVE] is True
    assert private[Attribute.EXTRACTABLE] is False
    assert private[Attribute.NEVER_EXTRACTABLE] is True and private[Attribute.ALWAYS_SENSITIVE] is True
    assert private[Attribute.LOCAL] is True  # generated on the token, not imported
    with pytest.raises(pkcs11.PKCS11Error):
        private[Attribute.EXTRACTABLE] = True
    with pytest.raises(pkcs11.PKCS11Error):
        private[Attribute.SENSITIVE] = False
    assert private[Attribute.EXTRACTABLE] is False and private[Attribute.SENSITIVE] is True


def test_keys_and_public_keys_survive_a_new_session(softhsm_token: SoftHsmToken, hsm: Pkcs11Signer) -> None:
    key_id = _key_id("restart")
    public_key = hsm.create_key(key_id, KeyScheme.SECP256K1)
    hsm.close()
    again = Pkcs11Signer(softhsm_token.module, softhsm_token.label, pin_env=softhsm_token.pin_env)
    try:
        assert again.public_key(key_id) == public_key
        assert again.key_scheme(key_id) is KeyScheme.SECP256K1
        assert key_id in again.key_ids()
        signature = again.sign(SigningRequest("w1", key_id, "ethereum", DIGEST, KeyScheme.SECP256K1))
        assert len(signature) == 65 and verify_signature(KeyScheme.SECP256K1, public_key, DIGEST, signature)
    finally:
        again.close()


class _FlakyHsm(Pkcs11Signer):
    """The real signer on the real token, with the token's output corrupted for the first ``bad`` signatures.

    This is how SoftHSM's occasional invalid secp256k1 signature looks to the signer; it cannot be provoked on demand.
    """

    def __init__(self, *args: object, bad: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.bad = bad
        self.raw_calls = 0

    def _raw_sign(self, private: pkcs11.SignMixin, scheme: KeyScheme, payload: bytes) -> bytes:
        self.raw_calls += 1
        raw = super()._raw_sign(private, scheme, payload)
        if self.raw_calls <= self.bad:
            return raw[:10] + bytes([raw[10] ^ 0x40]) + raw[11:]
        return raw


@pytest.mark.parametrize("scheme", sorted(KeyScheme))
def test_an_invalid_signature_is_retried_and_never_returned(
    softhsm_token: SoftHsmToken, scheme: KeyScheme, caplog: pytest.LogCaptureFixture
) -> None:
    payload = DIGEST if scheme is KeyScheme.SECP256K1 else b"solana message"
    flaky = _FlakyHsm(softhsm_token.module, softhsm_token.label, pin_env=softhsm_token.pin_env, bad=2)
    try:
        key_id = _key_id("flaky")
        public_key = flaky.create_key(key_id, scheme)
        signature = flaky.sign(SigningRequest("w1", key_id, "chain", payload, scheme))
        assert flaky.raw_calls == 3
        assert verify_signature(scheme, public_key, payload, signature)
        assert caplog.text.count(f"invalid {scheme} signature") == 2
    finally:
        flaky.close()


def test_the_signer_fails_closed_after_its_attempts(softhsm_token: SoftHsmToken) -> None:
    flaky = _FlakyHsm(
        softhsm_token.module, softhsm_token.label, pin_env=softhsm_token.pin_env, sign_attempts=3, bad=100
    )
    try:
        key_id = _key_id("broken")
        flaky.create_key(key_id, KeyScheme.SECP256K1)
        with pytest.raises(SignatureInvalidError, match="produced 3 invalid secp256k1 signatures"):
            flaky.sign(SigningRequest("w1", key_id, "bitcoin", DIGEST, KeyScheme.SECP256K1))
        assert flaky.raw_calls == 3
    finally:
        flaky.close()


def _plant_keypair(session: pkcs11.Session, key_id: str, private: dict[Attribute, object]) -> None:
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("1.3.132.0.10")}, local=True
    )
    template = {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SIGN: True, **private}
    params.generate_keypair(
        store=True, label=key_id, public_template={Attribute.TOKEN: True}, private_template=template
    )


def test_an_extractable_key_on_the_token_is_refused(hsm: Pkcs11Signer, token_session: pkcs11.Session) -> None:
    key_id = _key_id("extractable")
    _plant_keypair(token_session, key_id, {Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
    with pytest.raises(SigningRefusedError, match=r"SENSITIVE=False.*never extractable"):
        hsm.sign(SigningRequest("w1", key_id, "bitcoin", DIGEST))


def test_an_imported_key_is_refused(hsm: Pkcs11Signer, token_session: pkcs11.Session) -> None:
    key_id = _key_id("imported")
    secret = (7).to_bytes(32, "big")
    import coincurve

    point = coincurve.PrivateKey(secret).public_key.format(compressed=False)
    params = encode_named_curve_parameters("1.3.132.0.10")
    token_session.create_object(
        {
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
            Attribute.KEY_TYPE: KeyType.EC,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.LABEL: key_id,
            Attribute.EC_PARAMS: params,
            Attribute.VALUE: secret,
        }
    )
    token_session.create_object(
        {
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: KeyType.EC,
            Attribute.TOKEN: True,
            Attribute.LABEL: key_id,
            Attribute.EC_PARAMS: params,
            Attribute.EC_POINT: b"\x04\x41" + point,
        }
    )
    with pytest.raises(SigningRefusedError, match=r"(ALWAYS_SENSITIVE|NEVER_EXTRACTABLE|LOCAL)=False"):
        hsm.sign(SigningRequest("w1", key_id, "bitcoin", DIGEST))


def test_two_keys_with_one_label_are_refused(hsm: Pkcs11Signer, token_session: pkcs11.Session) -> None:
    key_id = _key_id("twin")
    hsm.create_key(key_id, KeyScheme.SECP256K1)
    _plant_keypair(token_session, key_id, {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
    fresh = Pkcs11Signer(hsm.module, hsm.token_label, pin_env=hsm.pin_env)  # no cached public key
    try:
        with pytest.raises(SigningRefusedError, match="refusing to guess"):
            fresh.sign(SigningRequest("w1", key_id, "bitcoin", DIGEST))
        with pytest.raises(KeyExistsError):
            fresh.create_key(key_id, KeyScheme.SECP256K1)
    finally:
        fresh.close()


def test_a_key_of_an_unsupported_curve_is_refused(hsm: Pkcs11Signer, token_session: pkcs11.Session) -> None:
    key_id = _key_id("p256")
    params = token_session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
    )
    params.generate_keypair(store=True, label=key_id, private_template={Attribute.TOKEN: True})
    with pytest.raises(SigningRefusedError, match="not supported"):
        hsm.public_key(key_id)
    with pytest.raises(SigningRefusedError, match="not supported"):
        hsm.sign(SigningRequest("w1", key_id, "bitcoin", DIGEST))


def test_the_wrong_pin_is_a_clear_error(softhsm_token: SoftHsmToken, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRONG_HSM_PIN", "00000000")
    signer = Pkcs11Signer(softhsm_token.module, softhsm_token.label, pin_env="WRONG_HSM_PIN")
    with pytest.raises(SigningError, match=r"PIN in \$WRONG_HSM_PIN was refused"):
        signer.public_key("anything")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: Pkcs11Signer(t.module, t.label, pin_env="NO_SUCH_PIN_VARIABLE"), "NO_SUCH_PIN_VARIABLE"),
        (lambda t: Pkcs11Signer(t.module, "no-such-token", pin_env=t.pin_env), "no token labelled 'no-such-token'"),
        (lambda t: Pkcs11Signer("/nonexistent/libvendor.so", t.label, pin_env=t.pin_env), "module .* not found"),
    ],
    ids=["pin-unset", "unknown-token", "missing-module"],
)
def test_set_up_mistakes_are_clear_errors(
    softhsm_token: SoftHsmToken, change: Callable[[SoftHsmToken], Pkcs11Signer], message: str
) -> None:
    signer = change(softhsm_token)
    with pytest.raises(SigningError, match=message):
        signer.sign(SigningRequest("w1", "k", "bitcoin", DIGEST))


def test_unknown_and_malformed_key_ids(hsm: Pkcs11Signer) -> None:
    for key_id in ("never-created", "", "x" * 200):
        with pytest.raises(UnknownKeyError):
            hsm.public_key(key_id)
    with pytest.raises(SigningRefusedError, match="not allowed"):
        hsm.create_key("", KeyScheme.SECP256K1)


# -- the plugin ---------------------------------------------------------------------------------------------------
# Loaded by module name, so that these tests do not depend on every other distribution installed in the venv.

PLUGIN_MODULE = "exchange_hsm_pkcs11.plugin"


def test_the_distribution_declares_its_entry_point() -> None:
    found = [ep for ep in importlib.metadata.entry_points(group="exchange_framework") if ep.name == "hsm_pkcs11"]
    # A set: an editable install can put the same distribution on sys.path twice.
    assert {(ep.value, ep.dist.name if ep.dist else None) for ep in found} == {(PLUGIN_MODULE, "exchange-hsm-pkcs11")}


def test_the_plugin_registers_the_signer_selected_by_backends_keystore(
    softhsm_token: SoftHsmToken, write_config: Callable[..., Path]
) -> None:
    config = load_config(
        write_config(
            f"""
            [backends]
            keystore = "hsm_pkcs11"

            [plugins]
            modules = ["{PLUGIN_MODULE}"]

            [plugins.settings.hsm_pkcs11]
            module = "{softhsm_token.module}"
            token_label = "{softhsm_token.label}"
            pin_env = "{softhsm_token.pin_env}"
            """
        )
    )
    pm = make_plugin_manager(config)
    pm.hook.startup.call_historic(kwargs={"config": config})
    signer = hot_wallet_signer(pm, config)
    assert isinstance(signer, Pkcs11Signer) and signer.name == "hsm_pkcs11"
    try:
        key_id = _key_id("plugin")
        public_key = signer.create_key(key_id, KeyScheme.ED25519)
        signature = signer.sign(SigningRequest("w1", key_id, "solana", b"message", KeyScheme.ED25519))
        assert verify_signature(KeyScheme.ED25519, public_key, b"message", signature)
    finally:
        signer.close()


def test_startup_fails_fast_when_the_hsm_is_selected_but_not_configured(
    write_config: Callable[..., Path],
) -> None:
    config = load_config(
        write_config(f'[backends]\nkeystore = "hsm_pkcs11"\n[plugins]\nmodules = ["{PLUGIN_MODULE}"]\n')
    )
    pm = make_plugin_manager(config)
    with pytest.raises(ValueError, match=r"needs \[plugins\.settings\.hsm_pkcs11\] with module and token_label"):
        pm.hook.startup.call_historic(kwargs={"config": config})


def test_bad_hsm_settings_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"\[plugins\.settings\.hsm_pkcs11\] pin: Extra inputs are not permitted"):
        Pkcs11Signer.from_settings({"module": "/x.so", "token_label": "t", "pin": "1234"})
    with pytest.raises(ValueError, match=r"token_label: Field required"):
        Pkcs11Signer.from_settings({"module": "/x.so"})


def test_the_software_signer_is_still_the_default_with_the_plugin_installed(
    write_config: Callable[..., Path],
) -> None:
    config = load_config(write_config(f'[plugins]\nmodules = ["{PLUGIN_MODULE}"]\n'))
    pm = make_plugin_manager(config)
    assert hot_wallet_signer(pm, config).name == "software"


def test_mechanisms_the_token_offers(token_session: pkcs11.Session) -> None:
    mechanisms = set(token_session.token.slot.get_mechanisms())
    assert {
        Mechanism.ECDSA,
        Mechanism.EC_KEY_PAIR_GEN,
        Mechanism.EDDSA,
        Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
    } <= mechanisms


def test_concurrent_signing_from_many_threads_and_signers(softhsm_token: SoftHsmToken, hsm: Pkcs11Signer) -> None:
    key_id = _key_id("threads")
    public_key = hsm.create_key(key_id, KeyScheme.SECP256K1)
    second = Pkcs11Signer(softhsm_token.module, softhsm_token.label, pin_env=softhsm_token.pin_env)
    results: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []

    def work(signer: Pkcs11Signer, n: int) -> None:
        try:
            for i in range(10):
                digest = hashlib.sha256(b"%d-%d" % (n, i)).digest()
                results.append((digest, signer.sign(SigningRequest(f"t{n}", key_id, "c", digest, KeyScheme.SECP256K1))))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(hsm if n % 2 else second, n)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    second.close()
    assert errors == []
    assert len(results) == 40
    assert all(verify_signature(KeyScheme.SECP256K1, public_key, d, s) for d, s in results)
    # The shared login outlives the other signer's close(): hsm still signs on it.
    signature = hsm.sign(SigningRequest("after", key_id, "c", DIGEST, KeyScheme.SECP256K1))
    assert verify_signature(KeyScheme.SECP256K1, public_key, DIGEST, signature)
