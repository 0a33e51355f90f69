"""Process `analysis-layers`: recompute the result layers (walk_access, service_provision) of a territory."""

from __future__ import annotations

from spatial.processes import Process, RunContext, register
from spatial.results import refresh


def run_analysis_layers(ctx: RunContext, inputs: dict) -> dict:
    return {"summary": refresh(ctx.engine, ctx.principal, inputs["territory"], ctx.principal.actor, ctx.progress)}


register(Process(
    id="analysis-layers",
    title="Recompute the result layers of a territory",
    description="Walking minutes from every residential building to the nearest kindergarten, school, polyclinic, "
                "pharmacy, stop and park with the 15-minute score (layer walk_access), and provision by planning "
                "norms per hexagonal district for every facility type with a demand norm (layer "
                "service_provision). Replaces the territory's rows in one transaction per layer and type; the "
                "layers' vector tiles follow.",
    inputs={"territory": {"title": "OKTMO of the territory", "schema": {"type": "string",
                                                                       "pattern": r"^\d{8}(\d{3})?$"}}},
    outputs={"summary": {"title": "Buildings measured, types found and missing, median score; per facility type "
                                  "the districts written, deficit and covered share", "schema": {"type": "object"}}},
    run=run_analysis_layers,
    keywords=("accessibility", "provision", "results"),
    # Writes shared layers: officials and analysts of any territory (the data read is public).
    roles=("federal", "regional", "municipal", "analyst"),
    long_running=True,
    examples=[{"territory": "19701000"}],
))
