"""Only what deploys to Modal or runs there: the deploy plan and the GPU classes' runtime."""
