"""Subjects as the domain sees them: dictionary, sealing, writes and reads."""
