"""The 95598 knowledge base: articles, storage and the KnowledgeBase facade."""
