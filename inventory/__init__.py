"""The Inventory service: the product catalogue and its stock."""
