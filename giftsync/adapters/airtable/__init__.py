"""giftsync's Airtable adapter over pyairtable 3.5.

- ``client``   the Api/session as giftsync configures it (timeouts, rate budget, no blind
               re-sends) and the classification of failures into giftsync.errors;
- ``mapping``  records ↔ domain objects (pure);
- ``cardbook`` ``AirtableCardBook``, the CardBook port;
- ``schema``   the base against config/base_schema.json (doctor / init-base);
- ``names``    table and field names (checked against config/base_schema.json by a test).
"""
from .cardbook import AirtableCardBook
from .schema import (Difference, InitResult, SchemaReport, check_schema, compare_schema, ensure_schema,
                     load_base_schema)

__all__ = ["AirtableCardBook", "Difference", "InitResult", "SchemaReport", "check_schema", "compare_schema",
           "ensure_schema", "load_base_schema"]
