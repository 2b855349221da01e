package cli

// The brisk command knows every broker: each registers its URL schemes when imported.
import (
	_ "github.com/briskq/brisk/broker/celerybroker" // celery+redis://, celery+amqp:// (Celery's queues, read only)
	_ "github.com/briskq/brisk/broker/pgbroker"     // postgres:// and postgresql://
	_ "github.com/briskq/brisk/broker/rabbitbroker" // amqp:// and amqps://
	_ "github.com/briskq/brisk/broker/redisbroker"  // redis:// and rediss://
	_ "github.com/briskq/brisk/broker/rqbroker"     // rq+redis:// (RQ's queues, read only)
	_ "github.com/briskq/brisk/broker/sqlitebroker" // sqlite:// (the default)
)
