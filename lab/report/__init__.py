"""`lab report`: one self-contained HTML page per run, of any kind (lab.kinds names each kind's page).

page (render, write, the demo's page) reads the parts that classifier_run and generator_run assemble
from a run folder into the blocks of blocks; plots draws with matplotlib, embed turns pictures into
data: URIs, and template.html lays the page out.
"""

from lab.report.page import write_report

__all__ = ["write_report"]
