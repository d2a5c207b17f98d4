"""Render the report's HTML to an archival PDF with WeasyPrint: PDF/A-3u, source files attached.

Nothing is fetched while rendering: the URL fetcher refuses every network and file URL (the HTML is
self-contained, so a refused fetch can only come from injected content, which then renders as nothing).
Dates come from the caller (the report time honouring SOURCE_DATE_EPOCH), so identical inputs give
byte-identical PDFs: WeasyPrint derives the document identifier from the content.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from weasyprint import HTML, Attachment
from weasyprint.urls import URLFetcher

PDF_VARIANT = "pdf/a-3u"


class RefusingURLFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that fetches nothing and remembers what was asked for."""

    def __init__(self) -> None:
        super().__init__(allowed_protocols=(), allow_redirects=False)
        self.refused: list[str] = []

    def fetch(self, url, headers=None):  # noqa: ANN001 - WeasyPrint's signature
        self.refused.append(str(url)[:200])
        raise ValueError(f"mia-audit reports fetch nothing (refused {str(url)[:80]!r})")


@dataclass(frozen=True)
class PdfAttachment:
    name: str
    data: bytes
    description: str
    relationship: str = "Source"  # PDF/A-3 AFRelationship: the report is rendered from these files


def render_pdf(*, html: str, attachments: list[PdfAttachment], moment: datetime) -> tuple[bytes, list[str]]:
    """The PDF bytes and the URLs that were refused (empty for a report mia-audit generated itself)."""
    fetcher = RefusingURLFetcher()
    files = [
        Attachment(
            string=item.data,
            name=item.name,
            description=item.description,
            created=moment,
            modified=moment,
            relationship=item.relationship,
            url_fetcher=fetcher,
        )
        for item in attachments
    ]
    # WeasyPrint logs through a NullHandler: refused fetches are reported by the caller from `refused`.
    document = HTML(string=html, base_url=None, url_fetcher=fetcher)
    pdf = document.write_pdf(pdf_variant=PDF_VARIANT, attachments=files)
    return pdf, fetcher.refused
