"""The ground floor: errors, located YAML sources, escaping, atomic writes, standard streams.

Imports nothing else of the engine; everything else may import it."""
