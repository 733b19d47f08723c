"""What go-livepeer and the runner's OpenAPI spec define: the pipelines, the wire schemas,
aiModels.json, the optimization flags and the unit rule. Imports nothing else of ours."""
