"""Read models built from the command journal: what the API and portal show about orders, fills and balances.

Each view is a pure, deterministic consumer: it is fed every sequenced command with the events it caused and the
journal's timestamp, ignores sequence numbers it has already seen, and can always be rebuilt by replaying the
journal. None of them is the system of record (that is the journal, and the ledger for money).
"""

from exchange_framework.views.balances import BalanceView
from exchange_framework.views.orders import OrderRecord, OrderStatus, OrderView, TradeRecord

__all__ = ["BalanceView", "OrderRecord", "OrderStatus", "OrderView", "TradeRecord"]
