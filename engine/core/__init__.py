"""The core: the case schema, the rule language and rule base, the experta compiler, the
analysis of rules, and the Advisor that evaluates one case into a Result.

Imports only base/. Nothing here reads a case file or writes a result: that is io/ and output/."""
