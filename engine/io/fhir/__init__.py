"""FHIR R4 in: resources read into case fields (resources), the mapping that says how
(mapping, kept as data in facts/fhir-map.yaml), Bundles and Bulk exports (bundles), and the
mapping in words for people (text)."""
