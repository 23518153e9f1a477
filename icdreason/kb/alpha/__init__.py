"""The ICD-10-CM Alphabetic Index in the knowledge base: read the XML, resolve its references, load it, look terms up.

See ``knowledge/README.md`` ("The Alphabetic Index") for the files icdreason ships and how a lookup works.
"""
