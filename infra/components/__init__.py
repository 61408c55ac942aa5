"""ComponentResources of the infra program, one module per part of the system."""
