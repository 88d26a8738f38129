"""Entry points (composition roots): each builds its clients, wires them and runs."""
