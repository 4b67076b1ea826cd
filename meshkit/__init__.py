"""What every ShopMesh service needs and no domain knows: server bootstrap, health,
reflection, error mapping, logging, configuration and database plumbing."""
