"""Scraping symptom descriptions and coding guidelines into the knowledge base (``icdreason scrape``).

- :mod:`.http`: polite fetching (robots.txt, User-Agent, per-host rate limit, retries, in-host redirects).
- :mod:`.sources`: what a symptom source is; :mod:`.registry`: sources by name; :mod:`.gesund`, :mod:`.medlineplus`:
  one module per symptom source (URL scheme and parser).
- :mod:`.symptoms`: choose codes, fetch, parse and store resumably; ``--from-dir`` parsing of saved pages.
- :mod:`.guidelines`, :mod:`.guidelines_store`: the CMS guidelines PDF into a section tree, the DuckDB table, and
  the per-chapter JSON export/import (:mod:`.guidelines_json`: the nested and flat file shapes).
"""

from .guidelines import Section, parse_pages, parse_pdf
from .guidelines_store import (GuidelineFiles, export_json, import_json_dir, load_sections, rows_from_sections,
                               store_rows, store_sections)
from .http import FetchOptions, FetchResult, PoliteFetcher
from .registry import get_source, source_names
from .sources import Description, Parsed, SymptomSource
from .symptoms import ScrapeSummary, read_codes_file, scrape_from_dir, scrape_symptoms, select_codes

__all__ = [
    "Description", "FetchOptions", "FetchResult", "GuidelineFiles", "Parsed", "PoliteFetcher", "ScrapeSummary",
    "Section",
    "SymptomSource", "export_json", "get_source", "import_json_dir", "load_sections", "parse_pages", "parse_pdf",
    "read_codes_file", "rows_from_sections", "scrape_from_dir", "scrape_symptoms", "select_codes", "source_names",
    "store_rows", "store_sections",
]
