"""How parts enter, shared by AMQP and HTTP: parsing and cleaning, intake, outbox, topology, consumer."""
