"""Quality checks shared by the validate stage, ``glave audit`` and the report."""
