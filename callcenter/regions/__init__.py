"""Administrative regions (GB/T 2260) and the province data files that seed them."""
