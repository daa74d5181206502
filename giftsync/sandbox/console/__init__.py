"""The sandbox console: one web page over the twins, served by ``giftsync sandbox``.

The page (``static/``: HTML + vanilla JS, no build step) shows the Airtable forms as staff
and customers get them, live views of the Airtable tables, the Shopify twin's cards and
orders with the buttons for what customers and admins do online, and the Klaviyo outbox.
Its JSON API (:mod:`giftsync.sandbox.console.server`) talks to the twins through their
real APIs (and to the Shopify world controls under ``/__sandbox/shopify/``).
"""
from .server import ConsoleServer

__all__ = ["ConsoleServer"]
