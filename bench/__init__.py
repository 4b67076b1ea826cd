"""`make bench`: how fast a ShopMesh mesh is on this machine, measured beside the
ceiling of Python gRPC (a trivial echo) in the same run."""
