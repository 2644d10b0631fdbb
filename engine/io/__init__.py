"""Reading cases: case files (YAML, JSON, JSON Lines, CSV), standard input, folders, and FHIR R4
(fhir/). Every path ends in the same validated case for the core. Imports core/ and base/."""
