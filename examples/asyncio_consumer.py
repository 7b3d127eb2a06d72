"""Publish and consume with the async/await API of amqp-adapter-asyncio (uvloop works too).

Usage: python examples/asyncio_consumer.py [AMQP_URL] (default: $AMQP_URL)
"""

import asyncio
import os
import sys
import uuid

from amqp_adapter_asyncio import connect


async def main(url: str, count: int = 10) -> None:
    queue = f"example-{uuid.uuid4().hex[:8]}"
    async with connect(url) as connection:
        channel = await connection.channel()
        await channel.queue_declare(queue, auto_delete=True)
        await channel.confirm_delivery()
        for number in range(count):
            await channel.basic_publish("", queue, f"message {number}".encode())
        received = 0
        async with channel.consume(queue) as consumer:
            async for message in consumer:
                print(message.body.decode())
                message.ack()
                received += 1
                if received == count:
                    break
    print(f"received {received} of {count}")


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ["AMQP_URL"]
    asyncio.run(asyncio.wait_for(main(url), timeout=60))
