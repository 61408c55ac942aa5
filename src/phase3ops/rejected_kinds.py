"""The kinds of stored refusal (`kind` in the rejected-messages collection): a message refused once, one
that kept failing until it was stored as poison, and one still failing. The SLOs read them back from
Firestore and `validate` checks those readers without a Firestore client, so the words live apart from
the store (`phase3ops.rejected_messages`)."""

REJECTED, POISON, FAILING = "rejected", "poison", "failing"
