"""Reading cases: case files (YAML, JSON, JSON Lines, CSV), standard input, folders, and FHIR R4
(fhir/). Every path ends in the same validated case for the core. Imports core/ and base/.

cases: the entry points (read_cases, pick_case). plan: what a run reads, in order; walk: a
folder's case files; sniffing: which format an input is; readers: each input to its format's
reader, which are jsonstream (JSON files, element by element, on jsonparse), jsonlines, csvcases
(on csvlines) and YAML (base.yamlsrc), with documents for what they share; stream: bytes as UTF-8;
guard: what every input's records pass through; scenario: a scenario's keys off its case;
record: CaseRecord; meter: bytes read, for a progress line; fhir/records: FHIR as records."""
