"""The scale table's loader on a real database: the services' own storage reads back what
it wrote, on SQLite and PostgreSQL."""

import asyncio
import datetime as dt

from bench import loader
from inventory.storage import InventoryStore
from meshkit.database import Database, utcnow
from meshkit.money import Money
from notifications.storage import NotificationStore
from orders.storage import OrderStore
from tests.helpers.databases import SERVICES, database_url

ORDERS = 1000
BACKLOG = 250


def test_the_services_read_back_a_loaded_history_and_backlog(service_env):
    databases = loader.Databases(**{service: database_url(service_env, service) for service in SERVICES})
    history = loader.History(
        ORDERS, "bench@example.com", "BENCH-1", Money.of("EUR", 1), utcnow().replace(microsecond=0)
    )
    loader.migrate(databases)
    loaded = loader.load_history(databases, history)
    assert loaded.rows == 3 * ORDERS and loaded.rows_per_second > 0
    backlog = loader.load_backlog(databases.notifications, history, BACKLOG)
    assert backlog.rows == BACKLOG and backlog.rows_per_second > 0

    async def read_back() -> None:
        db = Database(databases.orders)
        try:
            store = OrderStore(db)
            # the counter at the last event: the next order's event follows it, gap-free
            assert await store.last_sequence() == ORDERS
            events = await store.events_after(0, ORDERS + 1)
            assert [event.sequence for event in events] == list(range(1, ORDERS + 1))
            assert [event.order for event in events] == [history.order(index) for index in range(ORDERS)]
            assert {event.type.value for event in events} == {"CREATED"}
        finally:
            await db.close()
        db = Database(databases.inventory)
        try:
            # both followers start past the history instead of replaying it
            assert await InventoryStore(db).cursor() == ORDERS
        finally:
            await db.close()
        db = Database(databases.notifications)
        try:
            store = NotificationStore(db)
            assert await store.cursor() == ORDERS
            due = await store.due(utcnow() + dt.timedelta(seconds=1), ORDERS)
            assert [n.event_sequence for n in due] == list(range(ORDERS - BACKLOG + 1, ORDERS + 1))
            last = history.order(ORDERS - 1)
            assert (due[-1].order_id, due[-1].recipient, due[-1].subject) == (
                last.order_id,
                last.customer_email,
                f"Order {last.order_id[:8]} received",
            )
            assert {n.message_id for n in due} == loader.backlog_message_ids(history, BACKLOG)
        finally:
            await db.close()

    asyncio.run(read_back())
