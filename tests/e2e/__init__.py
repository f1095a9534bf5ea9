"""End-to-end flows of ecs-canary in the offline emulator (marked ``e2e``)."""
