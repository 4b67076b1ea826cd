"""Developer tooling for ShopMesh: code generation, the Envoy config renderer and
the local launcher behind `make up` (also used by the end-to-end tests)."""
