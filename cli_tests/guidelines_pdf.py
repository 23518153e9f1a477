"""Build a small guidelines PDF with the real CMS heading scheme (fpdf2), for the guidelines tests and bench."""

from __future__ import annotations

from pathlib import Path

from icdreason.codes import CHAPTER_RANGES

#: Chapter titles as the guidelines print them (FY 2025 wording, shortened where the real ones run long).
SUBSECTIONS = {
    1: [("Human Immunodeficiency Virus (HIV) Infections",
         "Code only confirmed cases of HIV infection/illness. This is an exception to the hospital inpatient "
         "guideline Section II, H."),
        ("Infectious agents as the cause of diseases classified to other chapters",
         "Certain infections are classified in chapters other than Chapter 1.")],
    9: [("Hypertension",
         "The classification presumes a causal relationship between hypertension and heart involvement and "
         "between hypertension and kidney involvement.\n1) Hypertension with Heart Disease\nHypertension with "
         "heart conditions classified to I50.- or I51.4-I51.7, I51.89, I51.9, are assigned to a code from "
         "category I11, Hypertensive heart disease."),
        ("Atherosclerotic Coronary Artery Disease and Angina",
         "ICD-10-CM has combination codes for atherosclerotic heart disease with angina pectoris."),
        ("Intraoperative and Postprocedural Cerebrovascular Accident",
         "Medical record documentation should clearly specify the cause- and-effect relationship."),
        ("Acute myocardial infarction (AMI)",
         "1) Type 1 ST elevation myocardial infarction (STEMI) and non-ST elevation myocardial infarction "
         "(NSTEMI)\nThe ICD-10-CM codes for type 1 acute myocardial infarction (AMI) identify the site, such as "
         "anterolateral wall or true posterior wall.")],
    13: [("Site and laterality",
          "Most of the codes within Chapter 13 have site and laterality designations."),
         ("Pathologic fractures due to osteoporosis",
          "A code from category M80, not a traumatic fracture code, should be used for any patient with known "
          "osteoporosis who suffers a fracture.")],
}


def guideline_pages() -> list[tuple[str, list[str]]]:
    """(heading or text line) blocks in document order, each block a list of lines; chapter 1 … 21 like FY 2025."""
    body: list[str] = [
        "Section I. Conventions, general coding guidelines and chapter specific guidelines",
        "The conventions, general guidelines and chapter-specific guidelines are applicable to all health care "
        "settings unless otherwise indicated.",
        "A. Conventions for the ICD-10-CM",
        "The conventions for the ICD-10-CM are the general rules for use of the classification.",
        "1. The Alphabetic Index and Tabular List",
        "The ICD-10-CM is divided into the Alphabetic Index, an alphabetical list of terms and their "
        "corresponding code, and the Tabular List.",
        "2. Format and Structure:",
        "The ICD-10-CM Tabular List contains categories, subcategories and codes.",
        "B. General Coding Guidelines",
        "1. Locating a code in the ICD-10-CM",
        "To select a code in the classification that corresponds to a diagnosis or reason for visit documented in "
        "a medical record, first locate the term in the Alphabetic Index.",
        "C. Chapter-Specific Coding Guidelines",
        "In addition to general coding guidelines, there are guidelines for specific diagnoses and/or conditions "
        "in the classification.",
    ]
    for chapter in CHAPTER_RANGES[:21]:
        title = chapter.title.title() if chapter.number != 5 else chapter.title
        body.append(f"{chapter.number}. Chapter {chapter.number}: {title} ({chapter.first}-{chapter.last})")
        body.append(f"Guidance that applies to every code of chapter {chapter.number} is given here.")
        for index, (heading, text) in enumerate(SUBSECTIONS.get(chapter.number, [])):
            body.append(f"{chr(ord('a') + index)}. {heading}")
            body += text.split("\n")
    body += [
        "Section II. Selection of Principal Diagnosis",
        "The circumstances of inpatient admission always govern the selection of principal diagnosis.",
        "A. Codes for symptoms, signs, and ill-defined conditions",
        "Codes for symptoms, signs, and ill-defined conditions from Chapter 18 are not to be used as principal "
        "diagnosis when a related definitive diagnosis has been established.",
        "B. Two or more interrelated conditions, each potentially meeting the definition for principal diagnosis.",
        "When there are two or more interrelated conditions potentially meeting the definition of principal "
        "diagnosis, either condition may be sequenced first.",
        "Section III. Reporting Additional Diagnoses",
        "For reporting purposes the definition for other diagnoses is interpreted as additional conditions.",
        "A. Previous conditions",
        "If the provider has included a diagnosis in the final diagnostic statement, it should ordinarily be coded.",
        "Section IV. Diagnostic Coding and Reporting Guidelines for Outpatient Services",
        "These coding guidelines for outpatient diagnoses have been approved for use by hospitals and providers.",
        "A. Selection of first-listed condition",
        "In the outpatient setting, the term first-listed diagnosis is used in lieu of principal diagnosis.",
    ]
    return body


def build_guidelines_pdf(path: Path, *, repeat_text: int = 1) -> Path:
    """Write the PDF: a title page, a table of contents with dot leaders, then the body with running headers."""
    from fpdf import FPDF

    class Guidelines(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", size=8)
            self.cell(0, 5, "ICD-10-CM Official Guidelines for Coding and Reporting FY 2025", new_x="LMARGIN",
                      new_y="NEXT")

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", size=8)
            self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="C")

    pdf = Guidelines()
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.multi_cell(0, 5, "ICD-10-CM Official Guidelines for Coding and Reporting\nFY 2025\n"
                         "(October 1, 2024 - September 30, 2025)", new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()
    pdf.multi_cell(0, 5, "Table of Contents", new_x="LMARGIN", new_y="NEXT")
    for line in ("Section I. Conventions, general coding guidelines and chapter specific guidelines ........ 3",
                 "A. Conventions for the ICD-10-CM ........ 3",
                 "C. Chapter-Specific Coding Guidelines ........ 4",
                 "9. Chapter 9: Diseases of the Circulatory System (I00-I99) ........ 5",
                 "Section II. Selection of Principal Diagnosis ........ 9"):
        pdf.multi_cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()
    for line in guideline_pages():
        heading = len(line) < 120 and not line.endswith(".")
        for _ in range(1 if heading else repeat_text):
            pdf.multi_cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path
