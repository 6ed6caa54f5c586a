"""``[custody]`` in exchange.toml: parsed, converted to atomic units, every mistake reported, engine built from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_framework.audit import AuditLog
from exchange_framework.cli import main
from exchange_framework.config import ConfigError, load_config, parse_config
from exchange_framework.custody.policy import RequestStatus
from exchange_framework.custody.policy_config import open_policy_engine, policy_config, whitelist_approvers
from exchange_framework.custody.rules import DestinationMatch, Network, RuleAction, Tier, VelocityScope
from tests.conftest import MINIMAL_CONFIG
from tests.custody.test_policy import HOT, Clock, whitelist, withdrawal
from tests.custody.test_whitelist import NAMES, private_key, public_bytes

KEYS = "\n".join(f'{name} = "{public_bytes(private_key(name)).hex()}"' for name in NAMES)

CUSTODY = f"""
[assets.ETH]
decimals = 18

[custody]
state_path = "custody/policy.db"
approval_ttl_s = 7200
release_ttl_s = 600

[custody.networks.ethereum]
chain_id = "1"
max_fee = "0.01"
fee_asset = "ETH"

[[custody.wallets]]
chain = "ethereum"
address = "{HOT}"
tier = "hot"
key_id = "hot-eth"

[custody.groups]
treasury = ["alice", "bob", "carol"]

[custody.whitelist_approvers]
{KEYS}

[[custody.rules]]
name = "no cold"
action = "block"
tier = "cold"

[[custody.rules]]
name = "small hot ETH"
action = "allow"
asset = "ETH"
tier = "hot"
max_amount = "0.5"

[[custody.rules]]
name = "large hot ETH"
action = "approve"
asset = "ETH"
tier = "hot"
approvals = 2
group = "treasury"

[[custody.rules]]
name = "address book"
action = "approve"
asset = "ETH"
approvals = 1
group = "treasury"
destination = "unlisted"

[[custody.limits]]
name = "ETH hourly"
asset = "ETH"
window_s = 3600
max_amount = "10"
per = "account"
"""


def test_custody_table_converts_to_integers() -> None:
    config = parse_config(MINIMAL_CONFIG + CUSTODY)
    policy = policy_config(config)
    assert policy.networks == [Network("ethereum", "1", max_fee=10**16)]
    assert [r.name for r in policy.rules] == ["no cold", "small hot ETH", "large hot ETH", "address book"]
    assert policy.rules[3].destination is DestinationMatch.UNLISTED
    assert policy.rules[1].destination is DestinationMatch.WHITELISTED
    assert policy.rules[1].max_amount == 5 * 10**17 and policy.rules[1].action is RuleAction.ALLOW
    assert policy.rules[0].tier is Tier.COLD
    assert policy.limits[0].max_amount == 10 * 10**18 and policy.limits[0].window_ns == 3600 * 10**9
    assert policy.limits[0].per is VelocityScope.ACCOUNT
    assert policy.approval_ttl_ns == 7200 * 10**9 and policy.release_ttl_ns == 600 * 10**9
    assert policy.groups == {"treasury": frozenset({"alice", "bob", "carol"})}
    assert whitelist_approvers(config).names == frozenset(NAMES) and whitelist_approvers(config).quorum == 3


def test_engine_from_config(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = load_config(write_config(CUSTODY))
    clock = Clock()
    with AuditLog.open(tmp_path / "audit.log", fsync=False, clock=clock) as audit:
        engine = open_policy_engine(config, audit=audit, clock=clock)
        whitelist(engine, "0xFRIEND")
        assert engine.submit(**withdrawal(1, 10**17)).status is RequestStatus.APPROVED  # type: ignore[arg-type]
        assert engine.submit(**withdrawal(2, 10**18)).status is RequestStatus.PENDING  # type: ignore[arg-type]
        engine.close()
    assert (tmp_path / "custody" / "policy.db").is_file()


def test_no_custody_table_is_fine_until_the_engine_is_wanted(tmp_path: Path) -> None:
    config = parse_config(MINIMAL_CONFIG)
    assert config.custody is None
    with pytest.raises(ValueError, match="no \\[custody\\] table"):
        policy_config(config)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('group = "treasury"', 'group = "treasure"'),
            "custody.rules[2].group = \"treasure\": rule 3 ('large hot ETH'): unknown approver group 'treasure' "
            "(groups: treasury)",
        ),
        (
            ("approvals = 2", "approvals = 4"),
            "custody.rules[2].approvals = 4: rule 3 ('large hot ETH'): approvals must be between 1 and the size of "
            "group 'treasury' (3), not 4",
        ),
        (
            ('max_amount = "0.5"', 'max_amount = "0.0000000000000000001"'),
            'custody.rules[1].max_amount = "0.0000000000000000001": ETH has 18 decimals: this amount has more',
        ),
        (('max_amount = "0.5"', "max_amount = 0.5"), "custody.rules[1].max_amount = 0.5"),
        (
            ('action = "allow"', 'action = "permit"'),
            "custody.rules[1].action = \"permit\": must be 'allow', 'block' or 'approve'",
        ),
        (('tier = "cold"', 'tier = "frozen"'), 'custody.rules[0].tier = "frozen"'),
        (
            ('asset = "ETH"\ntier = "hot"\nmax_amount', 'asset = "XRP"\ntier = "hot"\nmax_amount'),
            'custody.rules[1].asset = "XRP": unknown asset; define [assets.XRP]',
        ),
        (("window_s = 3600", "window_s = 0"), "custody.limits[0].window_s = 0: must be greater than 0"),
        (('fee_asset = "ETH"\n', ""), "custody.networks.ethereum.fee_asset = null: max_fee needs fee_asset"),
        (("approval_ttl_s = 7200", "approval_tll_s = 7200"), 'did you mean "approval_ttl_s"?'),
        (
            (f'alice = "{public_bytes(private_key("alice")).hex()}"', 'alice = "abc"'),
            'custody.whitelist_approvers.alice = "abc": must be an Ed25519 public key: 64 hex digits',
        ),
        (
            (
                f'bob = "{public_bytes(private_key("bob")).hex()}"',
                f'bob = "{public_bytes(private_key("alice")).hex()}"',
            ),
            "approvers 'alice' and 'bob' have the same key",
        ),
        (
            ('chain = "ethereum"\naddress', 'chain = "solana"\naddress'),
            "custody.wallets[0].chain = \"solana\": wallet solana:0xHOT: no network 'solana' is configured",
        ),
    ],
)
def test_bad_custody_config_is_reported_clearly(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in CUSTODY
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL_CONFIG + CUSTODY.replace(old, new, 1), source="exchange.toml")
    assert any(expected in line for line in info.value.lines), info.value.lines


def test_config_check_reports_custody_problems(write_config: Callable[..., Path]) -> None:
    path = write_config(CUSTODY.replace('group = "treasury"', 'group = "nobody"'))
    result = CliRunner().invoke(main, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    assert "unknown approver group 'nobody'" in result.output
