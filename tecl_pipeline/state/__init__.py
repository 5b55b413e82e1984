"""Local state: the per-session trading lock and the journal of what was decided and done."""
