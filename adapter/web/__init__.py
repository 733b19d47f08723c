"""HTTP routes: the generate routes of every pipeline and the service routes."""
