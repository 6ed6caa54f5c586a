"""Our exchange answering incoming TRISA transfers: the plugin's ``startup`` serves ``listen`` with mTLS, accepts a
transfer to one of our customers' deposit addresses, refuses others with a TRISA code, keeps every answer in
``trisa.db`` and gives the same answer for the same envelope after a restart."""

from __future__ import annotations

from pathlib import Path

from exchange_trisa import envelope, plugin
from exchange_trisa.receiver import Receiver
from exchange_trisa.store import IncomingTransfer, OutgoingTransfer, TransferStore
from exchange_trisa.transport import TrisaClient, TrisaServer
from exchange_trisa.wire import ErrorCode, TransferState

from exchange_framework.config import load_config
from exchange_framework.funding.store import DepositStore, insert_address
from exchange_framework.interfaces import DepositAddress
from tests.compliance.travel.pki import ThrowawayCA, sealing_key
from tests.compliance.travel.test_provider import TOML, write_files
from tests.compliance.travel.test_transport import transfer_payload

OUR_CUSTOMER = "0xc0ffee0000000000000000000000000000000007"


def test_the_exchange_answers_incoming_transfers_and_keeps_the_answers(tmp_path: Path, write_config: object) -> None:
    ca = ThrowawayCA.create()
    write_files(ca, tmp_path / "trisa")
    listening = '[plugins.settings.trisa]\nlisten = "127.0.0.1:0"\nreceive_chains = ["devchain"]\n'
    path = write_config(TOML.replace("[plugins.settings.trisa]\n", listening, 1))  # type: ignore[operator]
    config = load_config(path)
    data_dir = config.journal_path().parent
    deposits = DepositStore(data_dir / "deposits.db")
    with deposits.transaction() as db:
        insert_address(db, "devchain", 7, DepositAddress(OUR_CUSTOMER))
    deposits.close()
    plugin.startup(config)
    server = plugin.server_for(config)
    assert server is not None and server.port
    endpoint = f"127.0.0.1:{server.port}"
    bob_key = sealing_key()
    bob = TrisaClient(ca.issue("bob.vasp.test"), timeout=5)
    try:
        ours = bob.key_exchange(endpoint, bob_key.public_key(), name="alice.vasp.test")
        accepted = bob.transfer(endpoint, envelope.seal(transfer_payload(OUR_CUSTOMER), ours, envelope_id="in-1"))
        assert accepted.transfer_state == TransferState.ACCEPTED
        assert envelope.open(accepted, bob_key).received_at
        refused = bob.transfer(endpoint, envelope.seal(transfer_payload("0xstranger"), ours, envelope_id="in-2"))
        assert refused.error.code == ErrorCode.UNKNOWN_WALLET_ADDRESS
        plugin.shutdown(config)
        assert plugin.server_for(config) is None
        assert plugin.register_travel_rule_providers(config) == [plugin.provider_for(config)]  # as the wallet does
        assert plugin.server_for(config) is not None  # restarted: the answers were kept
        server = plugin.server_for(config)
        assert server is not None
        endpoint = f"127.0.0.1:{server.port}"
        bob.close()
        bob = TrisaClient(ca.issue("bob.vasp.test"), timeout=5)
        ours = bob.key_exchange(endpoint, bob_key.public_key())
        again = bob.transfer(endpoint, envelope.seal(transfer_payload("0xstranger"), ours, envelope_id="in-2"))
        assert again.error.code == ErrorCode.UNKNOWN_WALLET_ADDRESS
    finally:
        bob.close()
        plugin.shutdown(config)
    store = TransferStore(data_dir / "trisa.db")
    first, second = store.incoming("bob.vasp.test", "in-1"), store.incoming("bob.vasp.test", "in-2")
    assert first is not None and first.accepted and first.beneficiary_accounts == (OUR_CUSTOMER,)
    assert first.originator_names == ("Howard, Jane",)
    assert second is not None and not second.accepted and second.code == ErrorCode.UNKNOWN_WALLET_ADDRESS
    store.close()


def test_exchange_trisa_commands_look_up_and_check_a_counterparty(
    tmp_path: Path, write_config: object, installed_entry_points: object
) -> None:
    from click.testing import CliRunner

    from exchange_framework.cli import main

    ca = ThrowawayCA.create()
    write_files(ca, tmp_path / "trisa")
    bob = Receiver(sealing_key=sealing_key(), is_customer=lambda address: False)
    server = TrisaServer(
        ca.issue("bob.vasp.test"), transfer=bob.transfer, key_exchange=bob.key_exchange, address="127.0.0.1:0"
    )
    server.start()
    try:
        path = write_config(TOML.replace("127.0.0.1:1", f"127.0.0.1:{server.port}"))  # type: ignore[operator]
        runner = CliRunner()

        def run(*args: str) -> tuple[int, str]:
            result = runner.invoke(main, ["--config", str(path), "trisa", *args])
            return result.exit_code, result.output

        assert run("status", "bob.vasp.test") == (0, f"bob.vasp.test at 127.0.0.1:{server.port}: healthy\n")
        code, output = run("lookup", "bob.vasp.test")
        assert code == 0 and f"at 127.0.0.1:{server.port}; sealing key by KeyExchange" in output
        assert run("search", "bob") == (0, f"bob.vasp.test\t127.0.0.1:{server.port}\n")
        code, output = run("lookup", "nobody")
        assert code == 1 and "the directory has no VASP 'nobody'" in output
        store = TransferStore(load_config(path).journal_path().parent / "trisa.db")
        store.put(OutgoingTransfer("env-out", 12, "bob.vasp.test", "rejected", 51, "unknown address"))
        store.put_incoming(
            IncomingTransfer("env-in", "bob.vasp.test", True, 0, "accepted", ("0xc0", "0xc1"), ("Jane",)), 5
        )
        store.close()
        code, output = run("transfers")
        assert code == 0, output
        assert "  12\tenv-out\tbob.vasp.test\trejected\t51\tunknown address\n" in output
        assert "  bob.vasp.test\tenv-in\taccepted\t0xc0, 0xc1\tJane\n" in output
    finally:
        server.stop()
    code, output = run("status", "bob.vasp.test")
    assert code == 1 and "UNAVAILABLE" in output
