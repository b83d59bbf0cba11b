"""The reference for eda's overhead: a bare two-step Metaflow flow with one (blank) card."""

from metaflow import FlowSpec, Parameter, card, current, step


class BareCardFlow(FlowSpec):
    dataset = Parameter("dataset", default="")

    @card(type="blank")
    @step
    def start(self):
        from metaflow.cards import Markdown

        current.card.append(Markdown(f"# bare card for {self.dataset}"))
        self.loom_result = {"status": "OK", "verdict": None, "exit_code": 0, "summary": {}, "inputs": [], "messages": [], "next": []}
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BareCardFlow()
