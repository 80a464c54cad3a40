"""Client-side tools for trainers: ``parityscope.client`` posts metrics to a ParityScope server."""
