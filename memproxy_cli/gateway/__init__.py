"""The aiohttp gateway: routes per API family, identity, listeners, error shapes."""
