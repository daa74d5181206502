"""giftsync: one gift card, one balance, across Shopify and an Airtable base."""
__version__ = "0.1.0"
