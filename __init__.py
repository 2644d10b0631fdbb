"""ivig-advisor: IVIG advice in autoimmune neuromuscular diseases, as production rules.

The knowledge is Dalakas MC, JAMA 2004;291(19):2367-75 (PMID 15150209), kept as
YAML rules in ``rules/`` and a case schema in ``facts/``; ``ivig_advisor.engine``
compiles the rules onto experta's Rete and evaluates cases.

Importing this package is cheap: experta is imported only when a rule base is
compiled, so ``ivig --help`` stays fast.
"""

__version__ = "0.1.0"
