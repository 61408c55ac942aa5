"""`phase3ops plan`: the real infra program, run in-process under Pulumi's mocks."""
