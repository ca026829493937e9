"""The relay assembled: its components and their lifecycle (``relay``) and which handler takes
which command (``handlers``). ``service.app`` builds them from the settings and runs them."""
