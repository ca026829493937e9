"""A strict in-memory simulator of Tether's campaign API, built rule by rule from its fact sheet."""
