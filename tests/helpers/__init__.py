"""What the tests share besides fixtures: request builders, waiting, meshes, databases,
containers. Fixtures live in the conftest.py files, which use these too; a test module
imports from here, never from another test module or a conftest.py."""
