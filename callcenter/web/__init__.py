"""HTTP layer: app factory, dependencies, operational endpoints. Routes call services only."""
