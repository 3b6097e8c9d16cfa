"""Model backends; each module is imported only when one of its models is created."""
